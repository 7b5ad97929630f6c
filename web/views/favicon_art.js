// Parallel Runs: what our favicon shows while prompts are in flight, drawn on any 2D canvas
// context: a neutral disc, a ring filled clockwise from the top with the running prompts'
// mean progress, their number in the middle, and an amber dot while some wait. Pure: no DOM
// (the caller brings the context), so node tests can draw on a recording stand-in.

export const FAVICON_SIZE = 32; // drawn at twice the 16 px tab icon, for high-DPI screens
export const RING_STEPS = 32; // progress is drawn in steps this fine (one redraw per step)

const DISC = "#262626";
const TRACK = "#4a4a4a";
const RING = "#22c55e";
const TEXT = "#ffffff";
const WAITING = "#f59e0b";
const TOP = -Math.PI / 2;

/**
 * Pure: what to draw for aggregateProgress() = {running, fraction} and `queued` waiting, or
 * null when nothing is in flight (then the frontend's own favicon is shown).
 */
export function faviconState({ running = 0, fraction = 0 } = {}, queued = 0) {
  if (!running && !queued) return null;
  const clamped = Math.min(1, Math.max(0, Number(fraction) || 0));
  return { running, queued, fraction: running ? clamped : 0 };
}

/** Pure: one key per distinct picture, so a picture is drawn once and kept. */
export function faviconKey(state, steps = RING_STEPS) {
  if (!state) return "idle";
  const step = Math.round(state.fraction * steps);
  return `${state.running}|${state.queued > 0 ? "w" : "-"}|${step}/${steps}`;
}

/** Pure: the number written in the middle ("9+" past nine). */
export function countLabel(running) {
  return running > 9 ? "9+" : String(running);
}

/** Draw `state` (from faviconState, not null) on `ctx`, a 2D context `size` pixels square. */
export function drawFavicon(ctx, state, size = FAVICON_SIZE) {
  const centre = size / 2;
  const width = size * 0.17;
  const radius = centre - width / 2 - size * 0.03;
  const swept = (Math.round(state.fraction * RING_STEPS) / RING_STEPS) * 2 * Math.PI;
  ctx.clearRect(0, 0, size, size);
  ctx.beginPath();
  ctx.arc(centre, centre, centre, 0, 2 * Math.PI);
  ctx.fillStyle = DISC;
  ctx.fill();
  ctx.lineWidth = width;
  ctx.beginPath();
  ctx.arc(centre, centre, radius, 0, 2 * Math.PI);
  ctx.strokeStyle = TRACK;
  ctx.stroke();
  if (swept > 0) {
    ctx.beginPath();
    ctx.arc(centre, centre, radius, TOP, TOP + swept);
    ctx.strokeStyle = RING;
    ctx.stroke();
  }
  ctx.fillStyle = TEXT;
  ctx.font = `bold ${Math.round(size * 0.5)}px sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(countLabel(state.running), centre, centre + size * 0.03);
  if (state.queued > 0) {
    ctx.beginPath();
    ctx.arc(size * 0.82, size * 0.18, size * 0.16, 0, 2 * Math.PI);
    ctx.fillStyle = WAITING;
    ctx.fill();
    ctx.lineWidth = size * 0.05;
    ctx.strokeStyle = DISC;
    ctx.stroke();
  }
}
