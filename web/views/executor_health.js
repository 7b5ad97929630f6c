// Parallel Runs: where prompts can run and how busy each place is (GET /parallel/executors),
// under the panel's "Run on" line. Refreshed while the panel is on screen.

import { el } from "./dom.js";

const REFRESH_MS = 15_000;

/** One executor's line: its name, then reachable/queue/wait/GPU (pure). */
export function healthText(entry) {
  const health = entry?.health;
  if (!health) return `${entry?.executor ?? "?"}: ready`;
  if (!health.reachable) return `${health.executor}: unreachable`;
  const parts = [];
  const waiting = (health.queued ?? 0) + (health.running ?? 0);
  parts.push(waiting ? `${health.running ?? 0} running, ${health.queued ?? 0} waiting` : "idle");
  if (health.idle_workers) parts.push(`${health.idle_workers} idle worker(s)`);
  if (waiting && typeof health.estimated_wait === "number") {
    parts.push(`~${Math.round(health.estimated_wait)} s wait`);
  }
  if (health.detail) parts.push(health.detail);
  return `${health.executor}: ${parts.join(" · ")}`;
}

/** The list element; `refresh()` asks the server again (also every 15 s while shown). */
export function createExecutorHealth({ api, doc = document }) {
  const list = el("ul", { class: "parallel-runs-executors", title: "Where prompts can run" });
  let timer = null;

  async function refresh() {
    try {
      const response = await api.fetchApi("/parallel/executors");
      if (!response.ok) return;
      const body = await response.json();
      list.replaceChildren(
        ...(body.executors ?? []).map((entry) =>
          el("li", {
            class: "parallel-runs-executor-health",
            "data-executor": entry.executor,
            "data-reachable": String(entry.health?.reachable ?? true),
            text: healthText(entry),
          }),
        ),
      );
    } catch {
      // the server is away: the list keeps its last state until it answers again
    }
  }

  function tick() {
    if (!doc.contains(list)) {
      timer = null; // the panel was closed: stop asking
      return;
    }
    refresh().finally(() => {
      timer = setTimeout(tick, REFRESH_MS);
    });
  }

  /** Start refreshing (call once the element is in the page). */
  function start() {
    if (timer === null) timer = setTimeout(tick, 0);
  }

  return { element: list, refresh, start };
}
