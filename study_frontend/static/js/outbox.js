// Nothing is lost: the session's token and every answer not yet acknowledged by the server live in
// localStorage (one key per study and recruitment id). An answer is written there *before* it is sent and
// removed only after a 2xx; a reload sends what is left, in order, before asking the server what comes next.

import { HttpError, isRetryable } from "./api.js";

const VERSION = 1;

/** The persisted state of one participant's session in this browser: {token, pending, dropped}. */
export class SessionStore {
  constructor(key) {
    this.key = key;
    this.memoryOnly = false;
    this.state = this._load();
  }

  _load() {
    try {
      const raw = window.localStorage.getItem(this.key);
      const state = raw ? JSON.parse(raw) : null;
      if (state && state.version === VERSION) return state;
    } catch (err) {
      console.warn("localStorage is not readable; answers are kept in memory only", err);
      this.memoryOnly = true;
    }
    return { version: VERSION, token: null, pending: [], dropped: [] };
  }

  save() {
    if (this.memoryOnly) return;
    try {
      window.localStorage.setItem(this.key, JSON.stringify(this.state));
    } catch (err) {
      console.warn("localStorage is full or blocked; answers are kept in memory only until sent", err);
    }
  }

  get token() {
    return this.state.token;
  }

  setToken(token) {
    this.state.token = token;
    this.save();
  }

  forget() {
    this.state = { version: VERSION, token: null, pending: [], dropped: [] };
    try {
      window.localStorage.removeItem(this.key);
    } catch {
      /* nothing stored, nothing to remove */
    }
  }
}

/**
 * The queue of answers. `add()` persists an answer at once; `flush()` sends the queue in order, waiting out
 * network errors and 5xx with backoff (`withRetry`'s policy), and resolves when the server has acknowledged
 * every answer. A final refusal (4xx: e.g. 409, the trial was already answered differently) drops that answer
 * into `dropped` (kept for diagnosis) and goes on: the server's `/next` stays the source of truth.
 */
export class Outbox {
  constructor(store, api, { sleep, backoff, onStatus = () => {} }) {
    this.store = store;
    this.api = api;
    this.sleep = sleep;
    this.backoff = backoff;
    this.onStatus = onStatus;
    this._flushing = null;
  }

  get pending() {
    return this.store.state.pending;
  }

  add(item) {
    const pending = this.pending.filter((p) => p.trial_id !== item.trial_id);
    pending.push({ ...item, queued_at: Date.now() });
    this.store.state.pending = pending;
    this.store.save();
  }

  flush() {
    if (!this._flushing) {
      this._flushing = this._flush().finally(() => {
        this._flushing = null;
      });
    }
    return this._flushing;
  }

  async _flush() {
    let attempt = 0;
    while (this.pending.length) {
      const item = this.pending[0];
      try {
        await this.api.answer(this.store.token, item);
        this._remove(item);
        attempt = 0;
        this.onStatus({ state: "sent", remaining: this.pending.length });
      } catch (err) {
        if (!isRetryable(err)) {
          if (!(err instanceof HttpError)) throw err;
          console.warn(`answer to trial ${item.trial_id} refused for good`, err);
          this._remove(item, { status: err.status, detail: err.detail });
          continue;
        }
        const delay = err.retryAfterMs ?? this.backoff(attempt);
        this.onStatus({ state: "retrying", error: err, delayMs: delay, attempt, remaining: this.pending.length });
        attempt += 1;
        await this.sleep(delay);
      }
    }
  }

  _remove(item, refusal = null) {
    this.store.state.pending = this.pending.filter((p) => p !== item);
    if (refusal) {
      this.store.state.dropped = [...(this.store.state.dropped || []), { trial_id: item.trial_id, ...refusal }];
    }
    this.store.save();
  }
}
