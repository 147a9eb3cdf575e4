// Simulate mode (`?simulate=1`): a robot participant for piloting a study end to end. It drives the real page,
// with the same screens, buttons and canvas pointer events a person would use, so every trial module,
// timer and request runs as in a real session. Its sessions are started with `simulate: true` (the server marks
// them and leaves them out of results and exports) and get an external id "simulated-...".
// The browser tests do not use it: they type, click and touch through Playwright.

const PRIMARY = "main button.primary";

function click(selector) {
  const el = document.querySelector(selector);
  if (el && !el.disabled) el.click();
}

/** A stroke across the middle of the painting canvas, as pointer events. */
function paintStroke(canvas, random) {
  const rect = canvas.getBoundingClientRect();
  const y = rect.top + rect.height * (0.3 + 0.4 * random());
  const common = { pointerId: 7, pointerType: "mouse", isPrimary: true, button: 0, buttons: 1, bubbles: true };
  const at = (type, fx) => new PointerEvent(type, { ...common, clientX: rect.left + rect.width * fx, clientY: y });
  canvas.dispatchEvent(at("pointerdown", 0.25));
  for (let fx = 0.3; fx <= 0.75; fx += 0.05) canvas.dispatchEvent(at("pointermove", fx));
  canvas.dispatchEvent(at("pointerup", 0.75));
}

/** The blind-spot test's sweeps (trials/blindspot.js): press when the dot is 60 cm * tan(13.5 deg) from the
 * square, polled until the screen changes. */
function pressAtBlindSpot(life) {
  const field = document.getElementById("blind-spot-field");
  if (document.body.dataset.screen !== "blind-spot" || !field) return;
  const target = 600 * Math.tan((13.5 * Math.PI) / 180) * Number(field.dataset.pxPerMm);
  if (Number(field.dataset.offset) >= target) click("#blind-spot-now");
  life.timeout(() => pressAtBlindSpot(life), 20);
}

/**
 * Answer every screen after `delayMs` (a random judgment and confidence; one stroke per annotation). All its
 * timers and the observer belong to `life`.
 */
export function startSimulation(life, { delayMs = 80, random = Math.random } = {}) {
  let pending = null;
  const act = () => {
    pending = null;
    switch (document.body.dataset.screen) {
      case "consent":
        click("#consent-agree");
        break;
      case "instructions":
      case "resume":
      case "phase-main":
      case "phase-annotate":
      case "feedback":
      case "fullscreen": // a robot's click is no user gesture: fullscreen is refused and the session goes on
      case "calibration": // the outline's default size
        click(PRIMARY);
        break;
      case "blind-spot": // Start, then "It disappeared" where someone 60 cm away would press it, each sweep
        click("#blind-spot-start");
        pressAtBlindSpot(life);
        break;
      case "judgment":
        click(random() < 0.5 ? ".choice-perturbed" : ".choice-clean");
        break;
      case "confidence":
        click(`.confidence-scale button:nth-child(${1 + Math.floor(random() * 4)})`);
        break;
      case "annotate": {
        const canvas = document.querySelector("canvas.paint-overlay");
        if (canvas) paintStroke(canvas, random);
        life.timeout(() => click("button.done"), delayMs);
        break;
      }
      case "questionnaire": {
        // One random option per choice item and a short text, then submit (trials/questionnaire.js).
        for (const group of document.querySelectorAll("fieldset.q-item")) {
          const options = group.querySelectorAll("input[type=radio]");
          if (options.length) options[Math.floor(random() * options.length)].checked = true;
        }
        for (const area of document.querySelectorAll(".questionnaire textarea")) area.value = "simulated";
        click("#questionnaire-submit");
        break;
      }
      default:
        break;
    }
  };
  const schedule = () => {
    if (pending) pending();
    pending = life.timeout(act, delayMs);
  };
  const observer = new MutationObserver(schedule);
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-screen", "data-trial-position"] });
  life.add(() => observer.disconnect());
  schedule();
}
