// Parallel Runs: name the executor of offloaded prompts in the frontend's own job lists.
//
// The server lists offloaded prompts in ComfyUI's own routes (GET /queue, GET /jobs) with
// where they run (`parallel_runs.executor`); the frontends keep that field but render none that
// could say it (a waiting job reads "In queue", a running one "Running"). So we label the
// elements that carry a prompt id, and only those, so a label can never land on the wrong job:
// - the newest frontend's job rows ([data-job-id]): a small badge with the executor;
// - the job details popover of both frontends (hover a job in the queue overlay): an
//   "Executor" line under its "Job ID". The pinned frontend's Queue sidebar cards carry no id,
//   so they get no label.
// `executors` (Map prompt id -> executor) is filled by hooks/queue_scope.js from the same
// answers the lists are built from.

export const BADGE_CLASS = "parallel-runs-stock-executor";
export const DETAIL_CLASS = "parallel-runs-stock-executor-detail";
const BADGE_STYLE = [
  "position:relative",
  "z-index:1",
  "flex-shrink:0",
  "max-width:45%",
  "padding:0 6px",
  "border:1px solid currentColor",
  "border-radius:9999px",
  "font-size:10px",
  "line-height:16px",
  "white-space:nowrap",
  "overflow:hidden",
  "text-overflow:ellipsis",
  "opacity:0.85",
].join(";");

/** The words a label shows for an executor id ("comfyui:gpu2" -> "on comfyui:gpu2"). */
export function executorText(executor) {
  return `on ${executor}`;
}

/** Put (or update, or take away when `executor` is null) the badge of one [data-job-id] row:
 * right after its text column, which then truncates its text to make room (the row's hover
 * buttons still come after it). */
export function labelRow(doc, row, executor) {
  let badge = row.querySelector(`.${BADGE_CLASS}`);
  if (!executor) {
    badge?.remove();
    return;
  }
  if (!badge) {
    const item = row.firstElementChild ?? row;
    const column = [...item.children].find((child) => child.classList.contains("flex-col"));
    badge = doc.createElement("span");
    badge.className = `${BADGE_CLASS} text-muted-foreground`;
    badge.setAttribute("style", BADGE_STYLE);
    if (column) column.after(badge);
    else item.append(badge);
  }
  const text = executorText(executor);
  if (badge.textContent !== text) badge.textContent = text;
  if (badge.title !== executor) badge.title = executor;
}

/** Add an "Executor" line to a details grid after its "Job ID" value cell, copying the look of
 * the grid's own cells; once per grid. */
export function labelDetails(doc, valueCell, executor) {
  const grid = valueCell.parentElement;
  const labelCell = valueCell.previousElementSibling;
  if (!grid || !labelCell || grid.querySelector(`.${DETAIL_CLASS}`)) return;
  const name = doc.createElement("div");
  name.className = `${labelCell.className} ${DETAIL_CLASS}`;
  name.textContent = "Executor";
  const value = doc.createElement("div");
  value.className = `${valueCell.className} ${DETAIL_CLASS}`;
  const text = doc.createElement("span");
  text.className = "block min-w-0 truncate";
  text.textContent = executor;
  value.append(text);
  grid.append(name, value);
}

/** Label every element of the page that names an offloaded prompt. */
export function labelPage(doc, executors) {
  for (const row of doc.querySelectorAll("[data-job-id]")) {
    labelRow(doc, row, executors.get(row.dataset.jobId) ?? null);
  }
  if (executors.size === 0) return;
  for (const span of doc.querySelectorAll(".grid > div > span")) {
    const executor = executors.get(span.textContent.trim());
    if (!executor || span.closest(`.${DETAIL_CLASS}`)) continue;
    labelDetails(doc, span.parentElement, executor);
  }
}

/**
 * Keep the page labelled as the frontend renders its lists (a MutationObserver, at most once
 * per animation frame). Returns {refresh, stop}: `refresh()` after `executors` changed.
 */
export function installStockLabels({ doc, executors, win = globalThis }) {
  let pending = false;
  const run = () => {
    pending = false;
    labelPage(doc, executors);
  };
  const refresh = () => {
    if (pending) return;
    pending = true;
    win.requestAnimationFrame(run);
  };
  const observer = new win.MutationObserver(refresh);
  observer.observe(doc.body, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["data-job-id"],
  });
  refresh();
  return { refresh, stop: () => observer.disconnect() };
}
