// The blind-spot test of the virtual chinrest (Li, Joo, Yeatman & Reinecke 2020, Sci Rep 10:904): with the right
// eye covered, the participant fixates a square with the left eye while a dot moves leftwards away from it, and
// presses Space (or the button) the moment the dot disappears into the blind spot, about 13.5 degrees temporal
// of fixation. The square-to-dot distance then gives the viewing distance: offset / px_per_mm / tan(13.5 deg),
// averaged over 5 sweeps. The server recomputes it from the offsets (backend/study/visual_angle.py).

import { h, showScreen, waitForChoice } from "../ui.js";

export const BLIND_SPOT_DEG = 13.5;
export const SWEEPS = 5;
/** The distances the server accepts (mm); outside them the test is repeated or left out. */
export const DISTANCE_RANGE_MM = [200, 1500];
/** How fast the dot moves (mm on the screen per second): slow enough that a reaction time adds little. */
const SPEED_MM_S = 30;
const DOT_PX = 16;

const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Viewing distance (mm) from the sweeps' square-to-dot offsets (CSS px) and the card's CSS px per mm. */
export function viewingDistanceMm(offsetsPx, pxPerMm) {
  const mean = offsetsPx.reduce((a, b) => a + b, 0) / offsetsPx.length;
  return mean / pxPerMm / Math.tan((BLIND_SPOT_DEG * Math.PI) / 180);
}

/** One sweep: resolves with the square-to-dot offset (CSS px) at the press, or null when the dot reached the
 * screen's edge first (the participant sits further away than this screen can measure, or missed it). */
function sweep(life, { field, square, dot, now, pxPerMm }) {
  return new Promise((resolve) => {
    const fieldBox = field.getBoundingClientRect();
    const squareBox = square.getBoundingClientRect();
    const centre = squareBox.left + squareBox.width / 2 - fieldBox.left;
    const startX = centre - squareBox.width;
    const speed = SPEED_MM_S * pxPerMm; // CSS px per second
    let x = startX;
    let t0 = null;
    let cancelFrame = () => {};
    const cancels = [];
    const place = () => {
      dot.style.left = `${x - DOT_PX / 2}px`;
      field.dataset.offset = String(round(centre - x, 2));
    };
    const finish = (value) => {
      cancelFrame();
      cancels.forEach((cancel) => cancel());
      resolve(value);
    };
    const step = (ts) => {
      if (t0 === null) t0 = ts;
      x = startX - (speed * (ts - t0)) / 1000;
      if (x < DOT_PX / 2) return finish(null);
      place();
      cancelFrame = life.frame(step);
    };
    cancels.push(
      life.on(window, "keydown", (event) => {
        if (event.key !== " " || event.repeat) return;
        event.preventDefault();
        finish(round(centre - x, 2));
      }),
      life.on(now, "click", () => finish(round(centre - x, 2))),
    );
    dot.hidden = false;
    place();
    cancelFrame = life.frame(step);
  });
}

export const blindSpot = {
  info: {
    name: "blind-spot",
    parameters: {
      px_per_mm: { type: "float", description: "CSS px per mm from the card calibration" },
      again: { type: "bool", default: false, description: "the previous attempt gave an implausible distance" },
    },
    data: {
      blind_spot_px: { type: "float[]", description: `the ${SWEEPS} sweeps' square-to-dot offsets, CSS px` },
      viewing_distance_mm: { type: "float", description: "their mean / px_per_mm / tan(13.5 deg)" },
    },
  },
  async run(root, params, life) {
    const pxPerMm = params.px_per_mm;
    const square = h("div", { class: "bs-square", id: "blind-spot-square", "aria-hidden": "true" });
    const dot = h("div", { class: "bs-dot", id: "blind-spot-dot", "aria-hidden": "true", hidden: "" });
    const field = h("div", { class: "bs-field", id: "blind-spot-field", dataset: { pxPerMm: pxPerMm } }, square, dot);
    const start = h("button", { class: "primary", type: "button", id: "blind-spot-start" }, "Start");
    const now = h("button", { class: "secondary", type: "button", id: "blind-spot-now", disabled: "" }, "It disappeared");
    const count = h("p", { id: "blind-spot-count", role: "status" }, `Sweep 1 of ${SWEEPS}`);
    showScreen(
      root,
      "blind-spot",
      [
        h(
          "section",
          { class: "screen-text", "aria-labelledby": "blind-spot-heading" },
          h("h1", { id: "blind-spot-heading" }, params.again ? "Once more, please" : "Viewing distance"),
          h(
            "p",
            {},
            (params.again ? "That result cannot be right (the dot was stopped too early or too late). " : "") +
              "Sit as you will during the study. Cover your right eye with your hand and keep looking at the " +
              "square with your left eye. After Start, a red dot moves away from the square. Press Space (or the " +
              `button) the moment the dot disappears. This is done ${SWEEPS} times.`,
          ),
        ),
        field,
        h("div", { class: "actions" }, count, start, now),
      ],
      { focus: start },
    );
    await waitForChoice(life, { keys: {}, buttons: [[start, true]] });
    start.disabled = true;
    now.disabled = false;
    const offsets = [];
    while (offsets.length < SWEEPS) {
      count.textContent = `Sweep ${offsets.length + 1} of ${SWEEPS}`;
      const offset = await sweep(life, { field, square, dot, now, pxPerMm });
      dot.hidden = true;
      if (offset !== null) offsets.push(offset);
      field.dataset.sweeps = String(offsets.length);
      await life.sleep(500);
    }
    return { blind_spot_px: offsets, viewing_distance_mm: round(viewingDistanceMm(offsets, pxPerMm), 1) };
  },
};
