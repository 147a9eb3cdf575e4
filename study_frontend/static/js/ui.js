// Small DOM helpers shared by the screens and trials: element builder, screen marker, progress bar, status line.

/** `h("button", {class: "x", "aria-label": "..."}, "text", child)`; `on*` attributes are not supported (CSP). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "text") el.textContent = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Plain text as paragraphs (blank lines separate them); never parsed as HTML. */
export function paragraphs(text) {
  return String(text)
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => h("p", {}, p));
}

/**
 * Show `children` as the current screen in `root` and mark it on <body data-screen=...> (the browser tests
 * wait on it). `focus`: an element to focus, else the screen's heading (for screen readers).
 */
export function showScreen(root, name, children, { focus = null, extra = {} } = {}) {
  root.replaceChildren(...children);
  document.body.dataset.screen = name;
  for (const key of Object.keys(document.body.dataset)) {
    if (key !== "screen" && key !== "trialPosition" && key !== "liveHandles") delete document.body.dataset[key];
  }
  Object.assign(document.body.dataset, extra);
  const target = focus || root.querySelector("h1, h2");
  if (target) {
    if (!target.hasAttribute("tabindex") && !/^(BUTTON|INPUT|A)$/.test(target.tagName)) target.tabIndex = -1;
    target.focus({ preventScroll: true });
  }
}

export class Progress {
  constructor(el) {
    this.el = el;
    this.bar = el.querySelector(".progress-bar");
    this.label = el.querySelector(".progress-label");
  }

  set(done, total) {
    const fraction = total > 0 ? Math.min(1, done / total) : 0;
    this.el.hidden = false;
    this.el.setAttribute("aria-valuenow", String(done));
    this.el.setAttribute("aria-valuemax", String(total));
    this.el.setAttribute("aria-valuetext", `${done} of ${total} done`);
    this.bar.style.transform = `scaleX(${fraction})`;
    this.label.textContent = `${done} / ${total}`;
  }

  hide() {
    this.el.hidden = true;
  }
}

/** The polite live region at the bottom: connection trouble and saving, never covering the task. */
export class StatusLine {
  constructor(el) {
    this.el = el;
  }

  show(text, kind = "info") {
    this.el.textContent = text;
    this.el.dataset.kind = kind;
    this.el.hidden = false;
  }

  clear() {
    this.el.textContent = "";
    this.el.hidden = true;
    delete this.el.dataset.kind;
  }
}

/** Resolve when the participant presses one of `keys` (KeyboardEvent.key, case-insensitive) or clicks `buttons`. */
export function waitForChoice(life, { keys = {}, buttons = [] }) {
  return new Promise((resolve) => {
    life.on(window, "keydown", (event) => {
      if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
      const choice = keys[event.key.length === 1 ? event.key.toLowerCase() : event.key];
      if (choice === undefined) return;
      if (event.target instanceof HTMLButtonElement && (event.key === " " || event.key === "Enter")) return;
      event.preventDefault();
      resolve({ choice, event, source: "key" });
    });
    for (const [button, choice] of buttons) {
      life.on(button, "click", (event) => resolve({ choice, event, source: "button" }));
    }
  });
}
