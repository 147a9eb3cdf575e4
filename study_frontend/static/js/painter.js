// The salience mask being painted: strokes in image coordinates (pixels of the image's natural size) drawn on
// an offscreen canvas of naturalWidth x naturalHeight whose alpha channel is the paint (the server stores the
// alpha as the mask: 255 = salient). Undo/redo/clear act on the stroke list; the mask is redrawn from it.

/** Points closer than this (image pixels) to the previous point of a stroke are not recorded. */
const MIN_STEP = 0.5;

export class MaskPainter {
  constructor(width, height) {
    this.width = width;
    this.height = height;
    this.canvas = document.createElement("canvas");
    this.canvas.width = width;
    this.canvas.height = height;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: false });
    this.actions = []; // {mode: "paint"|"erase", size, pointer, points: [[x, y, t], ...]} | {mode: "clear", t}
    this.undone = [];
    this.current = null;
    this.counts = { undo: 0, redo: 0, clear: 0 };
    this._before = null; // alpha before the erase stroke in progress (see `_sweep`)
  }

  /** Start a stroke at image point (x, y), `t` ms since the trial's onset. */
  begin(mode, size, x, y, t, pointer) {
    [x, y] = [round2(x), round2(y)];
    this.current = { mode, size: round2(size), pointer, points: [[x, y, Math.round(t)]] };
    this.actions.push(this.current);
    this.undone = [];
    this._before = mode === "erase" ? this._alpha() : null;
    this._dab(this.current, x, y);
  }

  extend(x, y, t) {
    const stroke = this.current;
    if (!stroke) return false;
    const [px, py] = stroke.points[stroke.points.length - 1];
    [x, y] = [round2(x), round2(y)];
    if (Math.hypot(x - px, y - py) < MIN_STEP) return false;
    stroke.points.push([x, y, Math.round(t)]);
    this._segment(stroke, px, py, x, y);
    return true;
  }

  end() {
    if (this._before) this._sweep(this._before);
    this._before = null;
    this.current = null;
  }

  /** The alpha channel (the paint) as a copy. */
  _alpha() {
    const data = this.ctx.getImageData(0, 0, this.width, this.height).data;
    const alpha = new Uint8ClampedArray(this.width * this.height);
    for (let i = 0; i < alpha.length; i += 1) alpha[i] = data[4 * i + 3];
    return alpha;
  }

  /** After an erase stroke: a pixel the eraser took paint from and left with less than half of it is
   * cleared. The eraser's anti-aliased edge only scales alpha down (a * (1 - coverage)), so erasing over a
   * stroke's own soft edge would otherwise leave faint paint behind, which the stored mask keeps as residue. */
  _sweep(before) {
    const image = this.ctx.getImageData(0, 0, this.width, this.height);
    const data = image.data;
    let changed = false;
    for (let i = 0; i < before.length; i += 1) {
      const a = data[4 * i + 3];
      if (a < before[i] && a < 128 && a > 0) {
        data[4 * i + 3] = 0;
        changed = true;
      }
    }
    if (changed) this.ctx.putImageData(image, 0, 0);
  }

  clear(t) {
    if (this.isEmpty()) return false;
    this.end();
    this.actions.push({ mode: "clear", t: Math.round(t) });
    this.undone = [];
    this.counts.clear += 1;
    this.redraw();
    return true;
  }

  undo() {
    if (!this.actions.length) return false;
    this.end();
    this.undone.push(this.actions.pop());
    this.counts.undo += 1;
    this.redraw();
    return true;
  }

  redo() {
    if (!this.undone.length) return false;
    this.actions.push(this.undone.pop());
    this.counts.redo += 1;
    this.redraw();
    return true;
  }

  get canUndo() {
    return this.actions.length > 0;
  }

  get canRedo() {
    return this.undone.length > 0;
  }

  redraw() {
    this.ctx.clearRect(0, 0, this.width, this.height);
    for (const action of this.actions) {
      if (action.mode === "clear") {
        this.ctx.clearRect(0, 0, this.width, this.height);
        continue;
      }
      const before = action.mode === "erase" ? this._alpha() : null;
      const [first, ...rest] = action.points;
      this._dab(action, first[0], first[1]);
      let [px, py] = first;
      for (const [x, y] of rest) {
        this._segment(action, px, py, x, y);
        px = x;
        py = y;
      }
      if (before) this._sweep(before);
    }
  }

  /** Whether no pixel is painted (reads the mask; cheap at image sizes). */
  isEmpty() {
    const alpha = this.ctx.getImageData(0, 0, this.width, this.height).data;
    for (let i = 3; i < alpha.length; i += 4) if (alpha[i] !== 0) return false;
    return true;
  }

  /** Fraction of the image's pixels painted (alpha >= 128). */
  coverage() {
    const alpha = this.ctx.getImageData(0, 0, this.width, this.height).data;
    let n = 0;
    for (let i = 3; i < alpha.length; i += 4) if (alpha[i] >= 128) n += 1;
    return n / (this.width * this.height);
  }

  toDataURL() {
    return this.canvas.toDataURL("image/png");
  }

  /** The effective strokes (undone ones left out), thinned until their JSON fits in `maxBytes`. */
  strokes(maxBytes = 200 * 1024) {
    let actions = this.actions.map((a) => (a.points ? { ...a, points: a.points.slice() } : { ...a }));
    while (JSON.stringify(actions).length > maxBytes) {
      let thinned = false;
      actions = actions.map((a) => {
        if (!a.points || a.points.length < 3) return a;
        thinned = true;
        const last = a.points[a.points.length - 1];
        const points = a.points.filter((_, i) => i % 2 === 0);
        if (points[points.length - 1] !== last) points.push(last);
        return { ...a, points, thinned: (a.thinned || 0) + 1 };
      });
      if (!thinned) break;
    }
    return actions;
  }

  _style(stroke) {
    const ctx = this.ctx;
    ctx.globalCompositeOperation = stroke.mode === "erase" ? "destination-out" : "source-over";
    ctx.strokeStyle = "#fff";
    ctx.fillStyle = "#fff";
    ctx.lineWidth = stroke.size;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  _dab(stroke, x, y) {
    this._style(stroke);
    this.ctx.beginPath();
    this.ctx.arc(x, y, stroke.size / 2, 0, Math.PI * 2);
    this.ctx.fill();
    this.ctx.globalCompositeOperation = "source-over";
  }

  _segment(stroke, x0, y0, x1, y1) {
    this._style(stroke);
    this.ctx.beginPath();
    this.ctx.moveTo(x0, y0);
    this.ctx.lineTo(x1, y1);
    this.ctx.stroke();
    this.ctx.globalCompositeOperation = "source-over";
  }
}

function round2(x) {
  return Math.round(x * 100) / 100;
}
