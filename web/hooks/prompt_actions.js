// Parallel Runs: stop one prompt, whichever executor runs it, without touching the others.
//
// ComfyUI 0.3.75's POST /interrupt {prompt_id} interrupts only when that prompt is the one
// running (else it logs and does nothing); a prompt still waiting is removed with
// POST /queue {delete: [id]} (no websocket event follows, so we report it ourselves once
// GET /queue confirms it is gone). Offloaded prompts are cancelled by the offload route.

import { ALL_CLIENTS } from "./queue_scope.js";

const post = (api, route, body) =>
  api.fetchApi(route, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });

async function whereIs(api, promptId) {
  const response = await api.fetchApi("/queue", ALL_CLIENTS); // whoever queued it
  if (!response.ok) return "unknown";
  const queue = await response.json();
  const has = (items) => (items ?? []).some((item) => item[1] === promptId);
  if (has(queue.queue_running)) return "running";
  return has(queue.queue_pending) ? "queued" : "gone";
}

/** Returns {ok, message}. `report(detail)` dispatches a parallel.job event. */
export async function stopPrompt({ api, prompt, report }) {
  const id = prompt.prompt_id;
  if ((prompt.executor ?? "local") !== "local") {
    // runs on another executor: the server's relay asks it to stop
    const response = await post(api, "/parallel/offload/cancel", { prompt_id: id });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) return { ok: false, message: body?.error?.message ?? `HTTP ${response.status}` };
    if (body.status) report({ prompt_id: id, status: body.status, executor: prompt.executor });
    return { ok: true, message: "cancel requested" };
  }
  let where = await whereIs(api, id);
  if (where === "queued") {
    await post(api, "/queue", { delete: [id] });
    where = await whereIs(api, id);
    if (where === "gone") {
      report({ prompt_id: id, status: "interrupted", executor: prompt.executor ?? "local" });
      return { ok: true, message: "removed from the queue" };
    }
  }
  if (where === "running") {
    const response = await post(api, "/interrupt", { prompt_id: id });
    return { ok: response.ok, message: response.ok ? "interrupt sent" : `HTTP ${response.status}` };
  }
  return { ok: false, message: "not in the queue any more" };
}
