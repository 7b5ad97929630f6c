// Parallel Runs: where the frontend's top bar shows how many prompts are active and how far
// they are, found in the page on the pinned (1.32) and the newest (1.58) frontend. Finding
// only: views/top_bar.js writes our figures there. A part a version does not have is null,
// and then nothing is written to it.
//
// What each frontend shows by itself (its queue store lists the server's queue: /queue on
// 1.32, /api/jobs on 1.58, which ComfyUI 0.3 lacks; its execution store follows one "active
// prompt", the last whose execution_start it saw, and forgets it when any prompt ends):
// - 1.58: the actionbar's queue button "{count} active" (pending + running jobs of the server)
//   with a pulsing dot while that count is above 0 ([data-testid=active-jobs-indicator]);
// - 1.32: the queue history button (.queue-history-toggle) with a badge of the server's
//   waiting prompts while there are some;
// - both: under the actionbar, while a job runs or it thinks a prompt active, a progress
//   overlay: a bar and "Total: {percent}" (its active prompt's nodes done), "Current node:
//   <name> <percent>", and on hover "<n> running" / "<n> queued" (the server's queue);
// - 1.58 with the Comfy.Queue.QPOV2 layout: a thin total bar inside the actionbar
//   ([data-testid=queue-inline-progress]).

const OVERLAY_NEWEST = '[data-testid="queue-progress-overlay"]';
const OVERLAY_PINNED = ".actionbar-container + div > div";
const COUNT_BUTTON = '[data-testid="queue-overlay-toggle"]';
const COUNT_DOT = '[data-testid="active-jobs-indicator"]';
const BADGE_BUTTON = "button.queue-history-toggle";
const INLINE_TOTAL = '[data-testid="queue-inline-progress"] > div:first-child';
const DIGITS = /\d/;

/**
 * The overlay's active view (bar, "Total", running and queued), or null when it is not
 * shown in that form (hidden, expanded into the job list, or laid out otherwise). Its parts:
 * `{content, total, totalBar, running, queued}`; running and queued may be null.
 */
export function overlayParts(overlay) {
  const total = [...(overlay?.querySelectorAll("span.font-bold") ?? [])].find((span) =>
    /\d.*%|%.*\d/.test(span.textContent ?? ""),
  );
  // total: span < "Total" cell < label row < column, whose first child is the bar's track
  const column = total?.parentElement?.parentElement?.parentElement;
  const track = column?.firstElementChild;
  const bar = track?.firstElementChild;
  if (!bar || track.contains(total) || !(bar.style.width || bar.style.transform)) return null;
  const counts = [...(column.nextElementSibling?.querySelectorAll("span.font-bold") ?? [])];
  return {
    content: column.parentElement,
    total,
    totalBar: bar,
    running: counts[0] ?? null,
    queued: counts[1] ?? null,
  };
}

/**
 * The top bar's parts on this page: `{countLabel, marker, overlay, inlineBar}`. `marker` is
 * `{host, stock, counts}`: the button a count marker sits on, the frontend's own marker there
 * (null while it shows none) and what it counts ("active": running and waiting, shown as a
 * dot; "queued": waiting, shown as a number).
 */
export function findTopBar(doc) {
  const countButton = doc.querySelector(COUNT_BUTTON);
  const label = countButton?.querySelector("span.tabular-nums") ?? null;
  const badgeButton = countButton ? null : doc.querySelector(BADGE_BUTTON);
  let marker = null;
  if (countButton) {
    marker = { host: countButton, stock: countButton.querySelector(COUNT_DOT), counts: "active" };
  } else if (badgeButton) {
    const stock = [...badgeButton.children].find(
      (child) => child.tagName === "SPAN" && !child.dataset.parallelRuns,
    );
    marker = { host: badgeButton, stock: stock ?? null, counts: "queued" };
  }
  const overlay = doc.querySelector(OVERLAY_NEWEST) ?? doc.querySelector(OVERLAY_PINNED);
  return {
    countLabel: label && DIGITS.test(label.textContent ?? "") ? label : null,
    marker,
    overlay: overlay ? overlayParts(overlay) : null,
    inlineBar: doc.querySelector(INLINE_TOTAL),
  };
}
