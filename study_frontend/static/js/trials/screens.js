// The screens around the trials, as modules of the same shape (info + run): consent, instructions with the
// example pair, a notice with a Continue button, and the completion page.

import { fitSize } from "../images.js";
import { h, paragraphs, showScreen, waitForChoice } from "../ui.js";

const CONTINUE_KEYS = { " ": true, Enter: true };

/** Whether the page is used by touch alone (a phone or tablet): then no key is named, only the buttons
 * (the same media query as study.css's, which hides the key hints there). */
export function touchOnly() {
  return typeof window.matchMedia === "function" && window.matchMedia("(hover: none) and (pointer: coarse)").matches;
}

/** How to answer, in the words of the device: keys and buttons on a computer, buttons on a touch screen. */
function answerKeys() {
  if (touchOnly()) {
    return [
      h("li", {}, "Tap the left button if the image is ", h("strong", {}, "perturbed")),
      h("li", {}, "Tap the right button if the image is ", h("strong", {}, "clean")),
      h("li", {}, "Then tap how confident you are (1 = guessing, 4 = certain)"),
    ];
  }
  return [
    h("li", {}, h("kbd", {}, "F"), " or the left button: the image is ", h("strong", {}, "perturbed")),
    h("li", {}, h("kbd", {}, "J"), " or the right button: the image is ", h("strong", {}, "clean")),
    h("li", {}, "Then ", h("kbd", {}, "1"), "–", h("kbd", {}, "4"), ": how confident you are (1 = guessing, 4 = certain)"),
  ];
}

export const consent = {
  info: {
    name: "consent",
    parameters: {
      title: { type: "string", description: "the study's title" },
      text: { type: "string", description: "the consent text (plain text, blank lines between paragraphs)" },
    },
    data: { consent: { type: "bool", description: "true: agreed; false: declined (nothing is stored)" } },
  },
  async run(root, params, life) {
    const agree = h("button", { class: "primary", type: "button", id: "consent-agree" }, "I agree, start the study");
    const decline = h("button", { class: "secondary", type: "button", id: "consent-decline" }, "I do not agree");
    showScreen(root, "consent", [
      h(
        "section",
        { class: "screen-text", "aria-labelledby": "consent-heading" },
        h("h1", { id: "consent-heading" }, params.title),
        h("h2", {}, "Consent"),
        h("div", { class: "consent-text" }, paragraphs(params.text)),
        h("div", { class: "actions" }, agree, decline),
      ),
    ]);
    const { choice } = await waitForChoice(life, { buttons: [[agree, true], [decline, false]] });
    return { consent: choice };
  },
};

export const instructions = {
  info: {
    name: "instructions",
    parameters: {
      text: { type: "string", description: "the study's instructions" },
      example: { type: "object", default: null, description: "{clean, perturbed}: decoded example images, or null" },
      stimulus_duration_ms: { type: "int", default: null, unit: "ms" },
      has_practice: { type: "bool", default: true },
    },
    data: {},
  },
  async run(root, params, life) {
    const start = h("button", { class: "primary", type: "button" }, params.has_practice ? "Start practice" : "Start");
    const figure = params.example ? examplePair(params.example) : null;
    const timing =
      params.stimulus_duration_ms === null
        ? "Each image stays on screen until you answer."
        : `Each image is shown for ${(params.stimulus_duration_ms / 1000).toFixed(1)} s; you can answer after it is gone.`;
    showScreen(
      root,
      "instructions",
      [
        h(
          "section",
          { class: "screen-text", "aria-labelledby": "instructions-heading" },
          h("h1", { id: "instructions-heading" }, "Instructions"),
          paragraphs(params.text),
          figure,
          h("ul", { class: "keys" }, ...answerKeys()),
          h("p", {}, timing),
          h("p", { class: "hint keys-hint" }, "Press Space or Enter to begin."),
          start,
        ),
      ],
      { focus: start },
    );
    await waitForChoice(life, { keys: CONTINUE_KEYS, buttons: [[start, true]] });
    return {};
  },
};

function examplePair(example) {
  const side = Math.min(240, Math.max(64, (window.innerWidth - 64) / 2)); // two side by side, also on phones
  const cell = (loaded, caption) => {
    const img = loaded.img;
    const size = fitSize(loaded.width, loaded.height, side, side);
    img.className = "example-image";
    img.alt = caption;
    img.style.width = `${size.width}px`;
    img.style.height = `${size.height}px`;
    return h("figure", { class: "example" }, img, h("figcaption", {}, caption));
  };
  return h(
    "div",
    { class: "example-pair", role: "group", "aria-label": "Example: the same image clean and perturbed" },
    cell(example.clean, "Clean"),
    cell(example.perturbed, "Perturbed (strongest level in this study)"),
  );
}

export const notice = {
  info: {
    name: "notice",
    parameters: {
      screen: { type: "string", default: "notice", description: "the body's data-screen value" },
      heading: { type: "string" },
      text: { type: "string", default: "" },
      button: { type: "string", default: "Continue" },
    },
    data: {},
  },
  async run(root, params, life) {
    const next = h("button", { class: "primary", type: "button" }, params.button);
    showScreen(
      root,
      params.screen,
      [
        h(
          "section",
          { class: "screen-text", "aria-labelledby": "notice-heading" },
          h("h1", { id: "notice-heading" }, params.heading),
          paragraphs(params.text),
          h("p", { class: "hint keys-hint" }, "Press Space or Enter to continue."),
          next,
        ),
      ],
      { focus: next },
    );
    await waitForChoice(life, { keys: CONTINUE_KEYS, buttons: [[next, true]] });
    return {};
  },
};

export const completion = {
  info: {
    name: "completion",
    parameters: {
      code: { type: "string", description: "the completion code (the server sends it once every answer is stored)" },
      redirect_url: { type: "string", default: null, description: "where to go afterwards, or null" },
      redirect_after_ms: { type: "int", default: 5000, unit: "ms" },
      mturk: {
        type: "object",
        default: null,
        description: "{action, assignment_id}: an MTurk HIT, ended by posting the form to action (externalSubmit)",
      },
    },
    data: {},
  },
  async run(root, params, life) {
    const code = h("output", { class: "code", id: "completion-code" }, params.code);
    const copy = h("button", { class: "secondary", type: "button", "aria-label": "Copy the completion code" }, "Copy code");
    const parts = [
      h("h1", { id: "done-heading" }, "Thank you!"),
      h("p", {}, "All your answers are saved. Your completion code is:"),
      h("p", { class: "code-line" }, code, copy),
    ];
    let go = null;
    if (params.mturk) {
      // MTurk's ExternalQuestion contract: a POST with assignmentId (and a field of ours) to externalSubmit.
      const hidden = (name, value) => h("input", { type: "hidden", name, value });
      parts.push(
        h("p", {}, "Press the button to submit the HIT to Amazon Mechanical Turk."),
        h(
          "form",
          { method: "post", action: params.mturk.action, id: "mturk-submit" },
          hidden("assignmentId", params.mturk.assignment_id),
          hidden("completion_code", params.code),
          h("button", { class: "primary", type: "submit", id: "mturk-submit-button" }, "Submit HIT"),
        ),
      );
    } else if (params.redirect_url) {
      go = h("a", { class: "button primary", href: params.redirect_url }, "Return to the study platform now");
      parts.push(
        h("p", { role: "status" }, `You will be returned to the study platform in ${params.redirect_after_ms / 1000} seconds.`),
        go,
      );
    } else {
      parts.push(h("p", {}, "You can close this page now."));
    }
    showScreen(root, "done", [h("section", { class: "screen-text", "aria-labelledby": "done-heading" }, parts)], {
      extra: { completionCode: params.code },
    });
    life.on(copy, "click", async () => {
      try {
        await navigator.clipboard.writeText(params.code);
        copy.textContent = "Copied";
      } catch {
        window.getSelection().selectAllChildren(code);
      }
    });
    if (params.redirect_url) {
      await life.sleep(params.redirect_after_ms);
      window.location.assign(params.redirect_url);
    }
    await new Promise(() => {}); // the last screen: its listeners (copy) stay until the page goes
    return {};
  },
};
