// Annotation trial: the clean image with its class name; the participant paints the regions that show that
// class. Brush with a size control, eraser, undo/redo, clear; mouse, pen and touch through pointer events
// (`touch-action: none` on the canvas). Strokes are recorded and drawn in image coordinates on the mask of
// the image's natural size (painter.js), so the submitted PNG has exactly the image's pixels.

import { fitSize } from "../images.js";
import { MaskPainter } from "../painter.js";
import { h, showScreen } from "../ui.js";

export const info = {
  name: "annotate",
  parameters: {
    image: { type: "object", description: "a decoded image from images.loadImage" },
    class_name: { type: "string", description: "the image's class, shown in the question" },
    mask_width: { type: "int", default: null, unit: "px", description: "mask width the server expects (natural)" },
    mask_height: { type: "int", default: null, unit: "px", description: "mask height the server expects" },
    brush_css_px: { type: "int", default: 32, unit: "CSS px", description: "initial brush diameter on screen" },
    brush_min_css_px: { type: "int", default: 6, unit: "CSS px" },
    brush_max_css_px: { type: "int", default: 120, unit: "CSS px" },
    tint: { type: "string", default: "rgba(255, 196, 0, 0.6)", description: "colour of the painted overlay" },
  },
  data: {
    mask_png: { type: "string", description: "data URL of an RGBA PNG (alpha = paint) at mask_width x mask_height" },
    strokes: {
      type: "object",
      description: "{version, image_width, image_height, display_*, actions: [{mode, size (image px), pointer, " +
        "points: [[x, y, t_ms]]} | {mode: 'clear', t}], counts: {undo, redo, clear}, coverage}",
    },
    duration_ms: { type: "float", unit: "ms", description: "image's first painted frame -> Done" },
  },
};

export async function run(root, params, life) {
  const { image } = params;
  const maskW = params.mask_width || image.width;
  const maskH = params.mask_height || image.height;
  const painter = new MaskPainter(maskW, maskH);
  let mode = "paint";
  let brushCss = params.brush_css_px;

  const img = image.img;
  img.className = "stimulus paint-image";
  img.alt = `Image of: ${params.class_name}`;
  const overlay = h("canvas", {
    class: "paint-overlay",
    "aria-label": `Painting area over the image. Drag to paint the parts that show: ${params.class_name}`,
    role: "img",
  });
  const frame = h("div", { class: "paint-frame" }, img, overlay);
  const stage = h("div", { class: "stage paint-stage" }, frame);

  const tool = (label, key, extra = {}) =>
    h("button", { type: "button", class: "tool", "aria-label": `${label} (key ${key})`, ...extra }, label);
  const brush = tool("Brush", "B", { "aria-pressed": "true" });
  const eraser = tool("Eraser", "E", { "aria-pressed": "false" });
  const undo = tool("Undo", "Ctrl+Z", { disabled: true });
  const redo = tool("Redo", "Ctrl+Shift+Z", { disabled: true });
  const clear = tool("Clear", "C", { disabled: true });
  const size = h("input", {
    type: "range",
    id: "brush-size",
    min: params.brush_min_css_px,
    max: params.brush_max_css_px,
    step: 1,
    value: brushCss,
    "aria-label": "Brush size",
  });
  const sizeValue = h("output", { for: "brush-size", class: "size-value" }, `${brushCss}px`);
  const done = h("button", { type: "button", class: "primary done", disabled: true }, "Done");
  const hint = h("p", { class: "hint", id: "paint-hint" }, "Paint at least one region, then press Done.");
  const heading = h("h2", { id: "annotate-heading" }, "Paint the parts of the image that show: ", h("strong", {}, params.class_name));

  showScreen(
    root,
    "annotate-loading",
    [
      h(
        "section",
        { class: "trial trial-annotate", "aria-labelledby": "annotate-heading" },
        heading,
        stage,
        h(
          "div",
          { class: "toolbar", role: "toolbar", "aria-label": "Painting tools" },
          h("div", { class: "tool-group" }, brush, eraser),
          h("div", { class: "tool-group" }, undo, redo, clear),
        ),
        h(
          "div",
          { class: "paint-footer" },
          h("label", { class: "size-control", for: "brush-size" }, h("span", {}, "Size"), size, sizeValue),
          done,
        ),
        hint,
      ),
    ],
    { focus: heading },
  );

  // Layout: the image fitted to the stage; the overlay canvas on top at device-pixel resolution.
  let display = { width: 1, height: 1 };
  const octx = overlay.getContext("2d");
  let hover = null;
  let renderPending = false;
  const render = () => {
    renderPending = false;
    const dpr = window.devicePixelRatio || 1;
    const W = overlay.width;
    const H = overlay.height;
    octx.setTransform(1, 0, 0, 1, 0, 0);
    octx.globalCompositeOperation = "source-over";
    octx.clearRect(0, 0, W, H);
    octx.imageSmoothingEnabled = false; // show the mask at its own resolution: what you see is what is stored
    octx.drawImage(painter.canvas, 0, 0, W, H);
    octx.globalCompositeOperation = "source-in";
    octx.fillStyle = params.tint;
    octx.fillRect(0, 0, W, H);
    octx.globalCompositeOperation = "source-over";
    if (hover) {
      const r = (brushCss / 2) * dpr;
      for (const [colour, width] of [["rgba(0,0,0,0.8)", 3], ["rgba(255,255,255,0.95)", 1.5]]) {
        octx.beginPath();
        octx.arc(hover.x * dpr, hover.y * dpr, r, 0, Math.PI * 2);
        octx.lineWidth = width * dpr;
        octx.strokeStyle = colour;
        octx.stroke();
      }
    }
  };
  const scheduleRender = () => {
    if (renderPending) return;
    renderPending = true;
    life.frame(render);
  };
  const layout = () => {
    stage.style.height = ""; // measure the room the stylesheet gives, then shrink the stage to the image
    const box = stage.getBoundingClientRect();
    const fit = fitSize(maskW, maskH, Math.max(box.width, 1), Math.max(box.height, 1));
    display = fit;
    stage.style.height = `${fit.height}px`;
    for (const el of [img, overlay, frame]) {
      el.style.width = `${fit.width}px`;
      el.style.height = `${fit.height}px`;
    }
    const dpr = window.devicePixelRatio || 1;
    overlay.width = Math.round(fit.width * dpr);
    overlay.height = Math.round(fit.height * dpr);
    render();
  };
  layout();
  life.on(window, "resize", layout);
  const { now: onset } = await life.nextFrame();
  document.body.dataset.screen = "annotate";

  // Pointer input -> image coordinates.
  const toImage = (event) => {
    const rect = overlay.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) * maskW) / rect.width,
      y: ((event.clientY - rect.top) * maskH) / rect.height,
      cssX: event.clientX - rect.left,
      cssY: event.clientY - rect.top,
      scale: maskW / rect.width,
    };
  };
  let activePointer = null;
  const refreshControls = () => {
    const empty = painter.isEmpty();
    undo.disabled = !painter.canUndo;
    redo.disabled = !painter.canRedo;
    clear.disabled = empty;
    done.disabled = empty;
    hint.textContent = empty ? "Paint at least one region, then press Done." : "Press Done when the painting is complete.";
    document.body.dataset.painted = String(!empty);
  };
  const finishStroke = (event) => {
    if (activePointer === null || event.pointerId !== activePointer) return;
    activePointer = null;
    painter.end();
    refreshControls();
    scheduleRender();
  };
  life.on(overlay, "pointerdown", (event) => {
    if (activePointer !== null || !event.isPrimary) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    if (event.pointerType === "mouse") event.preventDefault();
    activePointer = event.pointerId;
    try {
      overlay.setPointerCapture(event.pointerId);
    } catch {
      /* a synthetic pointer cannot be captured; moves still arrive on the canvas */
    }
    const p = toImage(event);
    painter.begin(mode, brushCss * p.scale, p.x, p.y, event.timeStamp - onset, event.pointerType || "mouse");
    hover = event.pointerType === "touch" ? null : { x: p.cssX, y: p.cssY };
    scheduleRender();
  });
  life.on(overlay, "pointermove", (event) => {
    const p = toImage(event);
    hover = event.pointerType === "touch" ? null : { x: p.cssX, y: p.cssY };
    if (activePointer === event.pointerId) {
      const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
      for (const e of events.length ? events : [event]) {
        const q = toImage(e);
        painter.extend(q.x, q.y, e.timeStamp - onset);
      }
    }
    scheduleRender();
  });
  life.on(overlay, "pointerup", finishStroke);
  life.on(overlay, "pointercancel", finishStroke);
  life.on(overlay, "lostpointercapture", finishStroke);
  life.on(overlay, "pointerleave", () => {
    hover = null;
    scheduleRender();
  });

  // Tools.
  const setMode = (next) => {
    mode = next;
    brush.setAttribute("aria-pressed", String(mode === "paint"));
    eraser.setAttribute("aria-pressed", String(mode === "erase"));
    overlay.dataset.mode = mode;
  };
  const setSize = (value) => {
    brushCss = Math.min(params.brush_max_css_px, Math.max(params.brush_min_css_px, Math.round(value)));
    size.value = String(brushCss);
    sizeValue.textContent = `${brushCss}px`;
    scheduleRender();
  };
  const act = (fn) => () => {
    if (activePointer !== null) return;
    fn(performance.now() - onset);
    refreshControls();
    scheduleRender();
  };
  const doUndo = act(() => painter.undo());
  const doRedo = act(() => painter.redo());
  const doClear = act((t) => painter.clear(t));
  life.on(brush, "click", () => setMode("paint"));
  life.on(eraser, "click", () => setMode("erase"));
  life.on(undo, "click", doUndo);
  life.on(redo, "click", doRedo);
  life.on(clear, "click", doClear);
  life.on(size, "input", () => setSize(Number(size.value)));
  life.on(window, "keydown", (event) => {
    if (event.repeat && !["[", "]"].includes(event.key)) return;
    const key = event.key.toLowerCase();
    const command = event.ctrlKey || event.metaKey;
    if (command && key === "z") {
      event.preventDefault();
      if (event.shiftKey) doRedo();
      else doUndo();
    } else if (command && key === "y") {
      event.preventDefault();
      doRedo();
    } else if (command || event.altKey) {
      return;
    } else if (key === "b") setMode("paint");
    else if (key === "e") setMode("erase");
    else if (key === "c") doClear();
    else if (key === "[") setSize(brushCss - 4);
    else if (key === "]") setSize(brushCss + 4);
  });
  setMode("paint");

  await new Promise((resolve) => life.on(done, "click", () => !done.disabled && resolve()));
  const finished = performance.now();
  return {
    mask_png: painter.toDataURL(),
    strokes: {
      version: 1,
      image_width: maskW,
      image_height: maskH,
      display_width: display.width,
      display_height: display.height,
      device_pixel_ratio: window.devicePixelRatio || 1,
      coverage: Math.round(painter.coverage() * 10000) / 10000,
      counts: { ...painter.counts },
      actions: painter.strokes(),
    },
    duration_ms: Math.max(Math.round((finished - onset) * 1000) / 1000, 0.001),
  };
}
