// The participant protocol (`/api/v1`, see backend/api/participant.py) over fetch, and the retry policy:
// network errors, timeouts, 408, 429 and 5xx are retried with capped exponential backoff and jitter; other 4xx
// are final (they say what is wrong with the request; retrying cannot help).

export const REQUEST_TIMEOUT_MS = 20000;
export const BACKOFF = { baseMs: 300, capMs: 4000 };

export class NetworkError extends Error {
  constructor(message) {
    super(message);
    this.name = "NetworkError";
  }
}

export class HttpError extends Error {
  constructor(status, detail, retryAfterMs) {
    super(`HTTP ${status}: ${detail}`);
    this.name = "HttpError";
    this.status = status;
    this.detail = detail;
    this.retryAfterMs = retryAfterMs;
  }
}

export function isRetryable(err) {
  if (err instanceof NetworkError) return true;
  return err instanceof HttpError && (err.status >= 500 || err.status === 408 || err.status === 429);
}

/** Delay before retry `attempt` (0-based): "equal jitter", uniform in [d/2, d] with d = min(cap, base * 2^attempt). */
export function backoffDelay(attempt, { baseMs, capMs } = BACKOFF, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return ceiling / 2 + (random() * ceiling) / 2;
}

function detailText(body) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return "unexpected answer from the server";
}

function retryAfterMs(res) {
  const value = Number(res.headers.get("Retry-After"));
  return Number.isFinite(value) && value > 0 ? Math.min(value, 60) * 1000 : null;
}

/** One JSON request; resolves with {status, data}; throws NetworkError or HttpError. */
export async function requestJSON(method, url, body, signal) {
  const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const init = {
    method,
    cache: "no-store",
    credentials: "same-origin",
    headers: { Accept: "application/json" },
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    if (signal && signal.aborted) throw err;
    throw new NetworkError(err.message || String(err));
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    if (res.ok) throw new NetworkError("the answer was cut off");
  }
  if (!res.ok) throw new HttpError(res.status, detailText(data), retryAfterMs(res));
  return { status: res.status, data };
}

/**
 * `fn()` until it succeeds or fails with an error that is not retryable. `sleep(ms)` waits between attempts
 * (a Lifecycle's, so that it is cancelled with the page); `onRetry(err, delayMs, attempt)` reports each failure.
 */
export async function withRetry(fn, { sleep, onRetry = () => {} }) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetryable(err)) throw err;
      const delay = err.retryAfterMs ?? backoffDelay(attempt);
      onRetry(err, delay, attempt);
      await sleep(delay);
    }
  }
}

/** The protocol's URLs for one study. */
export class Api {
  constructor(base, slug) {
    this.base = base;
    this.slug = slug;
  }

  createSession(body, signal) {
    return requestJSON("POST", `${this.base}/studies/${encodeURIComponent(this.slug)}/sessions`, body, signal);
  }

  next(token, signal) {
    return requestJSON("GET", `${this.base}/sessions/${encodeURIComponent(token)}/next`, undefined, signal);
  }

  answer(token, item, signal) {
    const url = `${this.base}/sessions/${encodeURIComponent(token)}/trials/${item.trial_id}/${item.kind}`;
    return requestJSON("POST", url, item.body, signal);
  }

  /** The questionnaire's answers (after the last trial; a repeat of the same answers is acknowledged). */
  questionnaire(token, answers, signal) {
    const url = `${this.base}/sessions/${encodeURIComponent(token)}/questionnaire`;
    return requestJSON("POST", url, { answers }, signal);
  }
}
