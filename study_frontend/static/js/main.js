// One participant's session, start to finish: consent -> session -> instructions -> practice -> main ->
// annotation -> completion. The server's `/next` decides what comes next; answers go through the Outbox
// (localStorage until acknowledged), which is always flushed before `/next` is asked, so a reload resumes at
// the first unanswered trial and the completion code appears only after every answer is stored.

import { Api, HttpError, backoffDelay, withRetry } from "./api.js";
import { inFullscreen } from "./attention.js";
import { clientInfo, estimateRefreshRate } from "./clientinfo.js";
import { loadImage } from "./images.js";
import { Lifecycle, runTrial } from "./lifecycle.js";
import { Outbox, SessionStore } from "./outbox.js";
import { startSimulation } from "./simulate.js";
import * as annotate from "./trials/annotate.js";
import { DISTANCE_RANGE_MM, blindSpot } from "./trials/blindspot.js";
import { calibration, fullscreen } from "./trials/display.js";
import * as judgment from "./trials/judgment.js";
import { questionnaire } from "./trials/questionnaire.js";
import { completion, consent, instructions, notice } from "./trials/screens.js";
import { Progress, StatusLine, h, paragraphs, showScreen } from "./ui.js";

/** Shortest inter-trial interval (fixation cross) between detection trials, ms, when the page config has none
 * (the study's `iti_ms`); the next image loads meanwhile. */
const ITI_MS = 500;
const RECRUITMENT_KEYS = ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "assignmentId", "hitId"];

const config = JSON.parse(document.getElementById("study-config").textContent);
const itiMs = Number.isInteger(config.iti_ms) && config.iti_ms >= 0 ? config.iti_ms : ITI_MS;
const root = document.getElementById("app");
const progress = new Progress(document.getElementById("progress"));
const status = new StatusLine(document.getElementById("status"));
const app = new Lifecycle("app");

function recruitmentFromUrl() {
  const params = new URL(window.location.href).searchParams;
  const out = {};
  for (const key of RECRUITMENT_KEYS) {
    const value = params.get(key);
    if (value) out[key] = value;
  }
  return out;
}

/** Wait `ms` (app-wide; cut short when the browser reports it is back online). */
const sleep = (ms) => app.sleep(ms, "online");

function onRetry(err, delayMs) {
  const seconds = Math.max(1, Math.round(delayMs / 1000));
  if (err instanceof HttpError && err.status === 503 && err.retryAfterMs) {
    status.show(`${err.detail}. Trying again in ${seconds} s.`, "warn"); // e.g. the study's images are being prepared
    return;
  }
  const why = err instanceof HttpError ? `the server answered ${err.status}` : "no connection to the server";
  status.show(`Connection problem (${why}). Trying again in ${seconds} s — your answers are kept in this browser.`, "warn");
}

function finalScreen(name, heading, text) {
  progress.hide();
  status.clear();
  showScreen(root, name, [
    h("section", { class: "screen-text", "aria-labelledby": "final-heading" }, h("h1", { id: "final-heading" }, heading), paragraphs(text)),
  ]);
}

function explain(err) {
  if (err instanceof HttpError) return err.detail;
  return err && err.message ? err.message : String(err);
}

async function main() {
  // The server decides (`backend.api.simulation`): only a draft or a logged-in researcher gets simulate mode.
  const simulate = config.simulate === true;
  const recruitment = simulate ? {} : recruitmentFromUrl();
  const externalId = simulate
    ? `simulated-${Math.random().toString(36).slice(2, 12)}`
    : recruitment.PROLIFIC_PID || recruitment.workerId || null;
  if (simulate) startSimulation(app);
  const store = new SessionStore(`sipat:v1:${config.slug}:${externalId ?? "-"}`);
  const api = new Api(config.api, config.slug);
  const refreshRate = estimateRefreshRate(app);
  const outbox = new Outbox(store, api, {
    sleep,
    backoff: backoffDelay,
    onStatus: (s) => (s.state === "retrying" ? onRetry(s.error, s.delayMs) : status.clear()),
  });
  app.on(window, "beforeunload", (event) => {
    if (outbox.pending.length) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  window.sipatDebug = {
    openLifecycles: () => Lifecycle.open(),
    pending: () => outbox.pending.length,
    dropped: () => store.state.dropped || [],
  };

  const hadSession = Boolean(store.token);
  if (!hadSession) {
    if (config.status !== "open" && !(simulate && config.status === "draft")) {
      return finalScreen("closed", "This study is closed", "It does not accept participants any more. Thank you for your interest.");
    }
    const { consent: agreed } = await runTrial(consent, { title: config.title, text: config.consent_text }, root);
    if (!agreed && config.declined_code) return declined(config.declined_code, config.declined_url);
    if (!agreed) {
      return finalScreen(
        "declined",
        "Thank you for your time",
        "You chose not to take part, and nothing has been recorded. You can close this page now.\n\n" +
          "If you came from a recruiting platform, please return the study there.",
      );
    }
    showScreen(root, "starting", [h("p", { class: "loading", role: "status" }, "Starting the study…")]);
    const body = { consent: true, client: clientInfo(await refreshRate) };
    if (config.card_calibration) {
      const { px_per_mm } = await runTrial(calibration, {}, root); // the virtual chinrest, before the session
      if (px_per_mm >= 0.5 && px_per_mm <= 100) body.client.px_per_mm = px_per_mm;
      if (config.viewing_distance && body.client.px_per_mm) Object.assign(body.client, await measureDistance(px_per_mm));
    }
    if (Object.keys(recruitment).length) body.recruitment = recruitment;
    if (simulate) Object.assign(body, { external_id: externalId, simulate: true, simulate_grant: config.simulate_grant });
    try {
      const { data } = await withRetry(() => api.createSession(body), { sleep, onRetry });
      store.setToken(data.token);
    } catch (err) {
      return finalScreen("error", "The study cannot start", explain(err));
    }
    status.clear();
  }

  const nextTrial = async () => {
    await outbox.flush();
    const { data } = await withRetry(() => api.next(store.token), { sleep, onRetry });
    status.clear();
    return data;
  };
  const preload = (trial) =>
    trial.done ? Promise.resolve(null) : withRetry(() => loadImage(trial.image_url), { sleep, onRetry });

  let next;
  try {
    next = await nextTrial();
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) {
      store.forget();
      return finalScreen("error", "Your session was not found", "Please open the study link again to start anew.");
    }
    return finalScreen("error", "Something went wrong", explain(err));
  }
  let image = preload(next);

  if (!next.done && next.position === 0) {
    const example = await loadExample(store.token);
    await runTrial(
      instructions,
      {
        text: config.instructions,
        example,
        stimulus_duration_ms: config.stimulus_duration_ms,
        has_practice: next.phase === "practice",
      },
      root,
    );
    if (example) [example.clean, example.perturbed].forEach((e) => e.revoke());
  } else if (!next.done) {
    progress.set(next.position, next.total);
    await runTrial(
      notice,
      {
        screen: "resume",
        heading: "Welcome back",
        text: `Your earlier answers are saved. You continue with trial ${next.position + 1} of ${next.total}.`,
        button: "Continue",
      },
      root,
    );
  }

  let previousPhase = null; // after a resume, the intro of the annotation phase is shown again
  let fullscreenState = document.fullscreenEnabled ? "unasked" : "refused";
  while (!next.done) {
    progress.set(next.position, next.total);
    document.body.dataset.trialPosition = String(next.position);
    const main = next.phase === "main" || next.phase === "catch";
    if (main && previousPhase === "practice") {
      await runTrial(
        notice,
        {
          screen: "phase-main",
          heading: "Practice complete",
          text: "Now the main part begins. From here on you will not be told whether you were right.",
          button: "Start",
        },
        root,
      );
    } else if (next.phase === "annotate" && previousPhase !== "annotate") {
      await runTrial(
        notice,
        {
          screen: "phase-annotate",
          heading: "Last part: painting",
          text:
            "You will now see clean images with the name of what they show. Paint over the parts of the image " +
            "that show it: the regions you would use to recognise it. Use the brush (drag with the mouse, a pen or " +
            "your finger), the eraser to correct, and Undo if needed. Press Done when finished.",
          button: "Start painting",
        },
        root,
      );
    }
    if (config.require_fullscreen && next.phase !== "annotate" && !inFullscreen() && fullscreenState !== "refused") {
      // Before the first trial, and again after an exit; a browser that refused (or has none: iPhones) is
      // not asked again, its trials record the state.
      const { entered } = await runTrial(fullscreen, { again: fullscreenState === "entered" }, root);
      fullscreenState = entered ? "entered" : "refused";
    }
    const fixationAt = performance.now();
    const loaded = await waitWithFixation(image, next.phase === "annotate" ? 0 : itiMs);
    let item;
    try {
      if (next.phase === "annotate") {
        const data = await runTrial(
          annotate,
          { image: loaded, class_name: next.class_name, mask_width: next.mask_width, mask_height: next.mask_height },
          root,
        );
        item = { kind: "annotation", body: { mask_png: data.mask_png, strokes: data.strokes, duration_ms: data.duration_ms } };
      } else {
        const data = await runTrial(
          judgment,
          {
            image: loaded,
            phase: next.phase,
            stimulus_duration_ms: next.stimulus_duration_ms,
            mask_ms: next.stimulus_duration_ms !== null ? (config.mask_ms ?? null) : null,
            fixation_at: fixationAt,
            feedback_expected: next.phase === "practice" ? next.feedback_expected : null,
          },
          root,
        );
        const { judgment: answer, confidence: conf, rt_ms, client_timestamps } = data;
        const { focus_losses, visibility_losses, fullscreen_exits } = data;
        item = {
          kind: "response",
          body: { judgment: answer, confidence: conf, rt_ms, client_timestamps, focus_losses, visibility_losses, fullscreen_exits },
        };
      }
    } finally {
      loaded.revoke();
    }
    outbox.add({ trial_id: next.trial_id, position: next.position, ...item });
    previousPhase = next.phase;
    progress.set(next.position + 1, next.total);
    showScreen(root, "saving", [h("div", { class: "stage fixation", "aria-hidden": "true" }, "+")]);
    next = await nextTrial();
    image = preload(next);
  }

  progress.set(next.total, next.total);
  if (next.questionnaire_pending && (config.questionnaire || []).length) {
    // The study's questionnaire (trials/questionnaire.js), once, before the completion code.
    const { answers } = await runTrial(questionnaire, { items: config.questionnaire }, root);
    showScreen(root, "saving", [h("p", { class: "loading", role: "status" }, "Saving your answers…")]);
    await withRetry(() => api.questionnaire(store.token, answers), { sleep, onRetry });
    status.clear();
  }
  // An MTurk HIT ends with the external-submit form; the server validated its target (backend/study/mturk.py).
  const mturk =
    config.mturk_submit_url && recruitment.assignmentId
      ? { action: config.mturk_submit_url, assignment_id: recruitment.assignmentId }
      : null;
  await runTrial(completion, { code: next.completion_code, redirect_url: next.redirect_url, mturk }, root);
}

/** The blind-spot test (trials/blindspot.js), at most twice; {} when neither attempt gave a plausible distance
 * (the server would refuse it, and the session goes on without one). */
async function measureDistance(pxPerMm) {
  const [near, far] = DISTANCE_RANGE_MM;
  for (const again of [false, true]) {
    const { blind_spot_px, viewing_distance_mm } = await runTrial(blindSpot, { px_per_mm: pxPerMm, again }, root);
    if (viewing_distance_mm >= near && viewing_distance_mm <= far) return { blind_spot_px, viewing_distance_mm };
  }
  return {};
}

/** Declined consent with a platform code (Prolific's "no consent" code): shown, and the participant is sent
 * back with it when the platform's return link is known. Nothing is stored. */
async function declined(code, url) {
  progress.hide();
  status.clear();
  const parts = [
    h("h1", { id: "final-heading" }, "Thank you for your time"),
    h("p", {}, "You chose not to take part, and nothing has been recorded. Your code for the study platform is:"),
    h("p", { class: "code-line" }, h("output", { class: "code", id: "declined-code" }, code)),
  ];
  if (url) parts.push(h("a", { class: "button primary", id: "declined-return", href: url }, "Return to the study platform"));
  showScreen(root, "declined", [h("section", { class: "screen-text", "aria-labelledby": "final-heading" }, ...parts)]);
}

/** The fixation cross for at least `minMs` while the trial's image loads; resolves with the loaded image. */
async function waitWithFixation(imagePromise, minMs) {
  showScreen(root, "fixation", [h("div", { class: "stage fixation", "aria-hidden": "true" }, minMs ? "+" : "")]);
  const life = new Lifecycle("fixation");
  try {
    const [loaded] = await Promise.all([imagePromise, life.sleep(minMs)]);
    status.clear();
    return loaded;
  } finally {
    life.dispose();
  }
}

/** The instructions' example pair for this session, or null when the study has none (or it fails to load). */
async function loadExample(token) {
  const url = (which) => config.example_url.replace("TOKEN", encodeURIComponent(token)).replace("WHICH", which);
  try {
    const [clean, perturbed] = await Promise.all([loadImage(url("clean")), loadImage(url("perturbed"))]);
    return { clean, perturbed };
  } catch (err) {
    console.info("no example pair for the instructions", err);
    return null;
  }
}

main().catch((err) => {
  console.error(err);
  finalScreen(
    "error",
    "Something went wrong",
    `${explain(err)}\n\nYour answers so far are saved. Reload this page to continue where you left off.`,
  );
});
