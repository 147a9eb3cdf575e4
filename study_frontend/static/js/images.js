// Stimulus images are fetched as bytes and decoded before their trial starts, so that the image appears in one
// frame (no progressive loading) and the response time starts at a painted frame. The media URLs are
// `no-store`, so an <img src=url> would fetch again: the decoded element itself is handed to the trial.

import { HttpError, NetworkError, REQUEST_TIMEOUT_MS } from "./api.js";

/**
 * A decoded <img> of `url`: {img, width, height, revoke, fetchMs, decodeMs}. Throws NetworkError / HttpError
 * (retryable like the other requests) or an Error when the bytes are not an image.
 */
export async function loadImage(url, signal) {
  const started = performance.now();
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  let res;
  try {
    res = await fetch(url, {
      cache: "no-store",
      credentials: "same-origin",
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new NetworkError(err.message || String(err));
  }
  if (!res.ok) throw new HttpError(res.status, "the image could not be loaded", null);
  let blob;
  try {
    blob = await res.blob();
  } catch (err) {
    throw new NetworkError(err.message || String(err));
  }
  const fetched = performance.now();
  const objectUrl = URL.createObjectURL(blob);
  const img = new Image();
  img.decoding = "sync";
  img.draggable = false;
  img.alt = "";
  img.src = objectUrl;
  try {
    await img.decode();
  } catch (err) {
    URL.revokeObjectURL(objectUrl);
    throw new Error(`the image at ${url} cannot be decoded: ${err.message}`);
  }
  return {
    img,
    width: img.naturalWidth,
    height: img.naturalHeight,
    revoke: () => URL.revokeObjectURL(objectUrl),
    fetchMs: fetched - started,
    decodeMs: performance.now() - fetched,
  };
}

/**
 * CSS size of an image of natural size (w, h) fitted into a box (bw, bh): upscaled by a whole factor (every
 * image pixel the same size, perturbations not blurred) or downscaled to fit.
 */
export function fitSize(w, h, bw, bh) {
  const scale = Math.min(bw / w, bh / h);
  const k = scale >= 1 ? Math.floor(scale) : scale;
  return { width: Math.max(1, Math.round(w * k)), height: Math.max(1, Math.round(h * k)), scale: k };
}
