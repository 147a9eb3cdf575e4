// The participant's display, sent with the session: it changes what a perturbation looks like.

/**
 * Refresh rate in Hz from the median interval of `frames` animation frames (null if the page is hidden or too
 * few frames came within `maxMs`).
 */
export function estimateRefreshRate(life, { frames = 40, maxMs = 2000 } = {}) {
  return new Promise((resolve) => {
    const stamps = [];
    const finish = () => {
      const intervals = stamps.slice(1).map((t, i) => t - stamps[i]).filter((d) => d > 0);
      if (intervals.length < 5) return resolve(null);
      intervals.sort((a, b) => a - b);
      const median = intervals[Math.floor(intervals.length / 2)];
      resolve(Math.round((1000 / median) * 10) / 10);
    };
    const stop = life.timeout(finish, maxMs);
    const tick = (ts) => {
      stamps.push(ts);
      if (stamps.length > frames) {
        stop();
        finish();
      } else {
        life.frame(tick);
      }
    };
    life.frame(tick);
  });
}

function clip(value, max) {
  return typeof value === "string" && value ? value.slice(0, max) : undefined;
}

/** The `client` object of the session request (backend/schemas/participant.py ClientInfo). */
export function clientInfo(refreshRateHz) {
  let timezone;
  try {
    timezone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    timezone = undefined;
  }
  const positive = (n) => (Number.isFinite(n) && n >= 1 ? Math.round(n) : undefined);
  return {
    screen_width: positive(window.screen.width),
    screen_height: positive(window.screen.height),
    viewport_width: positive(window.innerWidth),
    viewport_height: positive(window.innerHeight),
    device_pixel_ratio: window.devicePixelRatio > 0 && window.devicePixelRatio <= 16 ? window.devicePixelRatio : undefined,
    refresh_rate_hz: refreshRateHz && refreshRateHz > 0 && refreshRateHz <= 1000 ? refreshRateHz : undefined,
    language: clip(navigator.language, 64),
    timezone: clip(timezone, 64),
  };
}
