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
 * CSS size of an image of natural size (w, h) fitted into a box (bw, bh) CSS px on a display of `dpr` device
 * pixels per CSS pixel (`window.devicePixelRatio`): where it fits, every image pixel becomes n x n whole device
 * pixels (CSS size = natural size / dpr * n, n the largest whole number that fits), so a perturbation of one
 * pixel is never smeared over a fractional device pixel; only an image larger than the box is downscaled.
 * {width, height} in CSS px, `scale` CSS px per image pixel, `devicePixels` device px per image pixel (n).
 */
export function fitSize(w, h, bw, bh, dpr = 1) {
  const ratio = Number.isFinite(dpr) && dpr > 0 ? dpr : 1;
  const fits = Math.min(bw / w, bh / h);
  const n = Math.floor(fits * ratio + 1e-9);
  if (n >= 1) return { width: (w * n) / ratio, height: (h * n) / ratio, scale: n / ratio, devicePixels: n };
  return { width: Math.max(1, Math.round(w * fits)), height: Math.max(1, Math.round(h * fits)), scale: fits, devicePixels: fits * ratio };
}

/** A canvas of `w` x `h` random grey pixels, shown at the stimulus's CSS size: the backward mask. */
export function noiseMask(w, h, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.className = "stimulus stimulus-mask";
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  const pixels = ctx.createImageData(w, h);
  const grey = new Uint8Array(w * h);
  crypto.getRandomValues(grey.subarray(0, Math.min(grey.length, 65536)));
  for (let i = 65536; i < grey.length; i += 65536) crypto.getRandomValues(grey.subarray(i, Math.min(grey.length, i + 65536)));
  for (let i = 0; i < grey.length; i += 1) {
    pixels.data[4 * i] = pixels.data[4 * i + 1] = pixels.data[4 * i + 2] = grey[i];
    pixels.data[4 * i + 3] = 255;
  }
  ctx.putImageData(pixels, 0, 0);
  return canvas;
}
