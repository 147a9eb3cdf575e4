// Detection trial: the (pre-decoded) image, "perturbed" or "clean" by key (F / J) or button, then confidence
// 1-4 (keys 1-4 or buttons), then, in practice, feedback. The response time runs from the first animation frame
// after the decoded image was put on the page (`performance.now()` in that frame's callback) to the
// judgment's input event (`event.timeStamp`, the same clock).

import { watchAttention } from "../attention.js";
import { fitSize, noiseMask } from "../images.js";
import { h, showScreen, waitForChoice } from "../ui.js";

export const CONFIDENCE_LABELS = ["Guessing", "Unsure", "Fairly sure", "Certain"];

export const info = {
  name: "judgment",
  parameters: {
    image: { type: "object", description: "a decoded image from images.loadImage ({img, width, height, ...})" },
    phase: { type: "string", default: "main", description: "practice | main | catch (catch looks like main)" },
    stimulus_duration_ms: {
      type: "int",
      default: null,
      unit: "ms",
      description: "hide the image this long after onset; null: until the judgment",
    },
    mask_ms: {
      type: "int",
      default: null,
      unit: "ms",
      description: "backward mask: random noise of the image's size this long right after a timed image; null: none",
    },
    fixation_at: {
      type: "float",
      default: null,
      unit: "ms",
      description: "performance.now() when the fixation before this trial began (client_timestamps.iti_ms)",
    },
    feedback_expected: {
      type: "string",
      default: null,
      description: "the correct answer ('perturbed' | 'clean'): show feedback after the answer (practice)",
    },
    keys: { type: "object", default: { f: "perturbed", j: "clean" }, description: "key -> judgment" },
    feedback_ms: { type: "int", default: null, unit: "ms", description: "feedback auto-advance; null: wait for Continue" },
  },
  data: {
    judgment: { type: "string", description: "'perturbed' | 'clean'" },
    confidence: { type: "int", description: "1 = guessing .. 4 = certain" },
    rt_ms: { type: "float", unit: "ms", description: "image's first painted frame -> judgment input" },
    client_timestamps: {
      type: "object",
      description: "performance.now() times (ms): onset, frame, answer, confidence, hidden; input kinds; sizes",
    },
    correct: { type: "bool", description: "practice only: the judgment matched feedback_expected" },
    focus_losses: { type: "int", description: "window blur events from the trial's start to its end" },
    visibility_losses: { type: "int", description: "times the page was hidden during the trial" },
    fullscreen_exits: { type: "int", description: "times fullscreen was left during the trial" },
  },
};

const round = (x) => Math.round(x * 1000) / 1000;

export async function run(root, params, life) {
  const { image, keys } = params;
  const attention = watchAttention(life); // counted until the trial ends (life disposed)
  const practice = params.phase === "practice";
  const stage = h("div", { class: "stage", "aria-live": "off" });
  const perturbed = h(
    "button",
    { class: "choice choice-perturbed", type: "button", disabled: true, "aria-label": "Perturbed (key F)" },
    h("span", {}, "Perturbed"),
    h("kbd", {}, "F"),
  );
  const clean = h(
    "button",
    { class: "choice choice-clean", type: "button", disabled: true, "aria-label": "Clean (key J)" },
    h("span", {}, "Clean"),
    h("kbd", {}, "J"),
  );
  const heading = h("h2", { class: "visually-hidden" }, practice ? "Practice image" : "Image");
  showScreen(
    root,
    "stimulus",
    [
      h(
        "section",
        { class: "trial", "aria-labelledby": "trial-heading" },
        practice ? h("p", { class: "badge" }, "Practice") : null,
        heading,
        stage,
        h("p", { class: "prompt", id: "trial-heading" }, "Has this image been perturbed?"),
        h("div", { class: "choices" }, perturbed, clean),
      ),
    ],
    { focus: heading },
  );

  // The image: sized to the stage, inserted, and timed from the next frame's callback.
  const box = stage.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const size = fitSize(image.width, image.height, Math.max(box.width, 1), Math.max(box.height, 1), dpr);
  const img = image.img;
  img.className = "stimulus";
  img.alt = "The image to judge";
  img.style.width = `${size.width}px`;
  img.style.height = `${size.height}px`;
  stage.style.height = `${size.height}px`;
  await img.decode();
  const inserted = performance.now();
  stage.replaceChildren(img);
  const { now: onset, frame } = await life.nextFrame();
  const times = {
    iti_ms: params.fixation_at === null ? null : round(onset - params.fixation_at),
    inserted: round(inserted),
    onset: round(onset),
    frame: round(frame),
    hidden: null,
    display_width: size.width,
    display_height: size.height,
    device_pixel_ratio: dpr,
    device_px_per_image_px: round(size.devicePixels),
    image_width: image.width,
    image_height: image.height,
    fetch_ms: round(image.fetchMs ?? 0),
    decode_ms: round(image.decodeMs ?? 0),
  };
  perturbed.disabled = false;
  clean.disabled = false;
  document.body.dataset.screen = "judgment";

  let answered = false; // after the answer the stage is emptied: a mask ending then leaves it empty
  if (params.stimulus_duration_ms !== null) {
    const mask = params.mask_ms !== null ? noiseMask(image.width, image.height, size.width, size.height) : null;
    const gone = () => {
      const blank = h("div", { class: "stimulus-gone", role: "img", "aria-label": "The image is no longer shown" });
      blank.style.width = `${size.width}px`;
      blank.style.height = `${size.height}px`;
      stage.replaceChildren(blank);
    };
    life.timeout(() => {
      times.hidden = round(performance.now());
      if (mask === null) return gone();
      stage.replaceChildren(mask); // the backward mask, then the blank
      times.mask_on = times.hidden;
      life.timeout(() => {
        times.mask_off = round(performance.now());
        if (!answered) gone();
      }, params.mask_ms);
    }, params.stimulus_duration_ms);
  }

  const answer = await waitForChoice(life, {
    keys,
    buttons: [
      [perturbed, "perturbed"],
      [clean, "clean"],
    ],
  });
  const answeredAt = answer.event.timeStamp > 0 ? answer.event.timeStamp : performance.now();
  let rt = answeredAt - onset;
  if (!(rt > 0)) rt = Math.max(performance.now() - onset, 0.001);
  answered = true;
  times.answer = round(answeredAt);
  times.answer_input = answer.source;
  stage.replaceChildren();

  const confidence = await askConfidence(root, life, answer.choice);
  times.confidence = round(confidence.at);
  times.confidence_input = confidence.source;

  const data = {
    judgment: answer.choice,
    confidence: confidence.value,
    rt_ms: round(rt),
    client_timestamps: times,
  };
  if (params.feedback_expected) {
    data.correct = answer.choice === params.feedback_expected;
    await showFeedback(root, life, data.correct, params.feedback_expected, params.feedback_ms);
  }
  return { ...data, ...attention };
}

async function askConfidence(root, life, judgment) {
  const buttons = CONFIDENCE_LABELS.map((label, i) =>
    h(
      "button",
      { class: "confidence", type: "button", "aria-label": `${i + 1}: ${label} (key ${i + 1})` },
      h("kbd", {}, String(i + 1)),
      h("span", {}, label),
    ),
  );
  const heading = h("h2", { id: "confidence-heading" }, "How confident are you?");
  showScreen(
    root,
    "confidence",
    [
      h(
        "section",
        { class: "trial trial-confidence", "aria-labelledby": "confidence-heading" },
        h("p", { class: "echo" }, `You answered: ${judgment}.`),
        heading,
        h("div", { class: "confidence-scale", role: "group", "aria-labelledby": "confidence-heading" }, buttons),
        h("p", { class: "hint" }, "Press 1 (guessing) to 4 (certain), or tap a button."),
      ),
    ],
    { focus: heading },
  );
  const keys = { 1: 1, 2: 2, 3: 3, 4: 4 };
  const { choice, event, source } = await waitForChoice(life, {
    keys,
    buttons: buttons.map((b, i) => [b, i + 1]),
  });
  return { value: choice, at: event.timeStamp > 0 ? event.timeStamp : performance.now(), source };
}

async function showFeedback(root, life, correct, expected, autoMs) {
  const next = h("button", { class: "primary", type: "button" }, "Continue");
  const heading = h("h2", { class: correct ? "feedback-right" : "feedback-wrong" }, correct ? "Correct" : "Not quite");
  showScreen(
    root,
    "feedback",
    [
      h(
        "section",
        { class: "trial trial-feedback", role: "status" },
        heading,
        h("p", {}, `This image was ${expected}.`),
        h("p", { class: "hint keys-hint" }, "Press Space or Enter to continue."),
        next,
      ),
    ],
    { focus: next, extra: { correct: String(correct) } },
  );
  const choice = waitForChoice(life, { keys: { " ": true, Enter: true }, buttons: [[next, true]] });
  if (autoMs !== null) await Promise.race([choice, life.sleep(autoMs)]);
  else await choice;
}
