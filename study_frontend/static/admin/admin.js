// The dashboard's only script (the pages' CSP allows no inline script): live job progress and copy buttons.
//
// Every element with `data-job-id` shows a job (see templates/admin/_macros.html `job_progress`). While any of
// them is queued or running, /admin/jobs/progress.json is polled every POLL_MS and the bars, status, message and
// ETA are updated in place. An element with `data-reload-on-finish` reloads the page once its job finishes
// while the page is open (so tables that depend on the job, e.g. the models, show its result).

const POLL_MS = 2000;
const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

function formatEta(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, seconds);
  if (s < 90) return `about ${Math.round(s)} s left`;
  if (s < 5400) return `about ${Math.round(s / 60)} min left`;
  return `about ${(s / 3600).toFixed(1)} h left`;
}

function show(el, job) {
  const bar = el.querySelector("progress");
  if (bar) {
    bar.value = job.progress;
    bar.textContent = `${Math.round(100 * job.progress)} %`;
  }
  const field = (name) => el.querySelector(`[data-field="${name}"]`);
  const status = field("status");
  if (status) {
    status.textContent = job.status;
    status.className = `badge status-${job.status}`;
  }
  const pct = field("pct");
  if (pct) pct.textContent = `${Math.round(100 * job.progress)} %`;
  const message = field("message");
  if (message) message.textContent = job.error ? `${job.message || ""} ${job.error}`.trim() : job.message || "";
  const eta = field("eta");
  if (eta) eta.textContent = job.status === "running" ? formatEta(job.eta_s) : "";
  el.dataset.status = job.status;
}

async function pollOnce(elements) {
  const ids = [...new Set(elements.map((el) => el.dataset.jobId))];
  let response;
  try {
    response = await fetch(`/admin/jobs/progress.json?ids=${ids.join(",")}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      redirect: "manual",
    });
  } catch {
    return "retry"; // the server is away for a moment
  }
  if (response.type === "opaqueredirect" || response.status === 401) return "stop"; // logged out
  if (!response.ok) return "retry";
  const data = await response.json();
  let reload = false;
  for (const job of data.jobs) {
    for (const el of elements.filter((e) => e.dataset.jobId === String(job.id))) {
      show(el, job);
      if (job.finished && el.hasAttribute("data-reload-on-finish")) reload = true;
    }
  }
  return reload ? "reload" : "continue";
}

function startPolling() {
  const tick = async () => {
    const active = [...document.querySelectorAll("[data-job-id]")].filter((el) => !FINISHED.has(el.dataset.status));
    if (active.length === 0) return;
    const outcome = await pollOnce(active);
    if (outcome === "reload") {
      window.location.reload();
      return;
    }
    if (outcome !== "stop") window.setTimeout(tick, POLL_MS);
  };
  window.setTimeout(tick, POLL_MS);
}

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const input = document.getElementById(button.dataset.copy);
      if (!input) return;
      input.select();
      try {
        await navigator.clipboard.writeText(input.value);
        button.textContent = "Copied";
      } catch {
        button.textContent = "Press Ctrl+C";
      }
      window.setTimeout(() => { button.textContent = "Copy"; }, 2000);
    });
  }
}

startPolling();
copyButtons();
