// Every timer, frame callback and event listener of a screen or trial is registered here and removed together
// when it ends (`dispose()`), so nothing of one trial can fire during the next. `Lifecycle.live` counts what is
// registered across all lifecycles (exposed for the browser tests, which check that a finished trial left none).

let live = 0;
const open = new Set();

export class Lifecycle {
  /** @param {string} name shown in the console when something fails after disposal */
  constructor(name) {
    this.name = name;
    this.disposed = false;
    this._disposers = new Set();
    open.add(this);
  }

  /** Handles registered and not yet removed, over all lifecycles. */
  static get live() {
    return live;
  }

  /** Names and handle counts of the lifecycles not yet disposed. */
  static open() {
    return [...open].map((l) => ({ name: l.name, handles: l._disposers.size }));
  }

  /** Register a clean-up function; returns a function that runs it early (once). */
  add(disposer) {
    if (this.disposed) {
      disposer();
      return () => {};
    }
    live += 1;
    let done = false;
    const run = () => {
      if (done) return;
      done = true;
      live -= 1;
      this._disposers.delete(run);
      disposer();
    };
    this._disposers.add(run);
    return run;
  }

  /** addEventListener, removed at dispose (or by calling the returned function). */
  on(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    return this.add(() => target.removeEventListener(type, handler, options));
  }

  /** setTimeout, cleared at dispose. */
  timeout(fn, ms) {
    let cancel = () => {};
    const id = setTimeout(() => {
      cancel();
      fn();
    }, ms);
    cancel = this.add(() => clearTimeout(id));
    return cancel;
  }

  /** requestAnimationFrame, cancelled at dispose; the callback gets the frame's timestamp (ms). */
  frame(fn) {
    let cancel = () => {};
    const id = requestAnimationFrame((ts) => {
      cancel();
      fn(ts);
    });
    cancel = this.add(() => cancelAnimationFrame(id));
    return cancel;
  }

  /** A promise of the next animation frame: resolves with performance.now() inside its callback. */
  nextFrame() {
    return new Promise((resolve) => this.frame((ts) => resolve({ now: performance.now(), frame: ts })));
  }

  /** A promise resolved after `ms`, or earlier when `wakeOn` (an event name on window) fires. */
  sleep(ms, wakeOn = null) {
    return new Promise((resolve) => {
      const cancels = [];
      const done = () => {
        cancels.forEach((c) => c());
        resolve();
      };
      cancels.push(this.timeout(done, ms));
      if (wakeOn) cancels.push(this.on(window, wakeOn, done));
    });
  }

  /** An AbortSignal that aborts at dispose (for fetch). */
  signal() {
    const controller = new AbortController();
    this.add(() => controller.abort());
    return controller.signal;
  }

  dispose() {
    if (this.disposed) return;
    for (const run of [...this._disposers]) {
      try {
        run();
      } catch (err) {
        console.error(`[${this.name}] clean-up failed`, err);
      }
    }
    this.disposed = true;
    open.delete(this);
  }
}

/**
 * Run one trial (or screen) module: fill in its declared parameter defaults, check required ones, run it with
 * a fresh Lifecycle, and dispose that lifecycle however the trial ends. Resolves with the trial's data.
 */
export async function runTrial(module, params, root) {
  const resolved = resolveParameters(module.info, params);
  const life = new Lifecycle(module.info.name);
  try {
    const data = await module.run(root, resolved, life);
    return { trial_type: module.info.name, ...data };
  } finally {
    life.dispose();
  }
}

export function resolveParameters(info, params) {
  const out = {};
  for (const [name, spec] of Object.entries(info.parameters)) {
    const value = params[name];
    if (value === undefined) {
      if (!("default" in spec)) throw new TypeError(`${info.name}: parameter '${name}' is required`);
      out[name] = spec.default;
    } else {
      out[name] = value;
    }
  }
  for (const name of Object.keys(params)) {
    if (!(name in info.parameters)) throw new TypeError(`${info.name}: unknown parameter '${name}'`);
  }
  return out;
}
