// Attention losses during a trial: how often the window lost focus (`blur`: another window or an alert took
// it), the page was hidden (`visibilitychange` to hidden: another tab, minimised) and fullscreen was left.
// A trial counts them from its start to its end; they go with the answer (responses.focus_losses,
// visibility_losses, fullscreen_exits) so the researcher can see (and exclude) trials not looked at.

/** Counters of the three losses, live while `life` is: the listeners go with it. */
export function watchAttention(life) {
  const counts = { focus_losses: 0, visibility_losses: 0, fullscreen_exits: 0 };
  life.on(window, "blur", () => {
    counts.focus_losses += 1;
  });
  life.on(document, "visibilitychange", () => {
    if (document.visibilityState === "hidden") counts.visibility_losses += 1;
  });
  life.on(document, "fullscreenchange", () => {
    if (!document.fullscreenElement) counts.fullscreen_exits += 1;
  });
  return counts;
}

/** Whether the page is in fullscreen now. */
export function inFullscreen() {
  return Boolean(document.fullscreenElement);
}
