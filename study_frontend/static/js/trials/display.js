// Display set-up screens, of the same shape as the trials (info + run): the request for fullscreen
// (`require_fullscreen`) and the card calibration (`card_calibration`, the "virtual chinrest": the participant
// matches a rectangle to a credit card, 85.60 mm wide, which gives CSS pixels per mm).

import { h, showScreen, waitForChoice } from "../ui.js";

/** ISO/IEC 7810 ID-1: every credit or debit card is 85.60 mm x 53.98 mm. */
export const CARD_WIDTH_MM = 85.6;
const CARD_ASPECT = 53.98 / 85.6;

export const fullscreen = {
  info: {
    name: "fullscreen",
    parameters: {
      again: { type: "bool", default: false, description: "the participant left fullscreen: ask them back" },
    },
    data: { entered: { type: "bool", description: "the browser granted fullscreen" } },
  },
  async run(root, params, life) {
    const go = h("button", { class: "primary", type: "button", id: "enter-fullscreen" }, "Enter fullscreen");
    const heading = h("h1", { id: "fullscreen-heading" }, params.again ? "Back to fullscreen, please" : "Fullscreen");
    showScreen(
      root,
      "fullscreen",
      [
        h(
          "section",
          { class: "screen-text", "aria-labelledby": "fullscreen-heading" },
          heading,
          h(
            "p",
            {},
            "The images are shown in fullscreen, so that nothing else on your screen distracts from them. " +
              "Please stay in fullscreen until the end (leaving it is recorded).",
          ),
          go,
        ),
      ],
      { focus: go },
    );
    await waitForChoice(life, { keys: {}, buttons: [[go, true]] });
    let entered = false;
    try {
      await document.documentElement.requestFullscreen();
      entered = true;
    } catch (err) {
      console.info("fullscreen refused", err); // the session goes on; its trials record the state
    }
    return { entered };
  },
};

export const calibration = {
  info: {
    name: "calibration",
    parameters: {},
    data: { px_per_mm: { type: "float", description: "CSS pixels per mm (card width in px / 85.60)" } },
  },
  async run(root, params, life) {
    const maxWidth = Math.max(200, Math.min(window.innerWidth - 40, 1200));
    const card = h("div", { class: "card-outline", id: "card", role: "img", "aria-label": "Card outline" });
    const slider = h("input", {
      type: "range",
      id: "card-size",
      min: "100",
      max: String(maxWidth),
      step: "1",
      value: String(Math.min(320, maxWidth)),
      "aria-label": "Size of the card outline",
    });
    const done = h("button", { class: "primary", type: "button", id: "card-done" }, "It matches my card");
    const resize = () => {
      const width = Number(slider.value);
      card.style.width = `${width}px`;
      card.style.height = `${Math.round(width * CARD_ASPECT * 100) / 100}px`;
    };
    life.on(slider, "input", resize);
    resize();
    const heading = h("h1", { id: "calibration-heading" }, "Screen size");
    showScreen(
      root,
      "calibration",
      [
        h(
          "section",
          { class: "screen-text", "aria-labelledby": "calibration-heading" },
          heading,
          h(
            "p",
            {},
            "Hold a bank or credit card (any card of that size) flat against the screen, over the outline below, " +
              "and move the slider until the outline has exactly the card's size. This tells us how large the " +
              "images appear on your screen.",
          ),
          card,
          slider,
          done,
        ),
      ],
      { focus: slider },
    );
    await waitForChoice(life, { keys: {}, buttons: [[done, true]] });
    return { px_per_mm: Math.round((Number(slider.value) / CARD_WIDTH_MM) * 10000) / 10000 };
  },
};
