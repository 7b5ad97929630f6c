// Parallel Runs: the frontend's own queue and job lists follow "Show prompts from".
//
// Both frontends list prompts from ComfyUI's routes: the pinned one from GET /queue and
// GET /history, the newest from GET /jobs. The server lists one client's prompts when asked
// with `parallel_client=<client id>` (server_routes/stock_queue), so while the scope is "this
// browser tab" those requests carry this tab's client id; with "every client" they go as they
// are and every client's prompts are listed, as stock ComfyUI lists local ones. A clear of the
// queue or history (POST) carries it too: the list's Clear then clears what the list shows.
// The answers also say where each offloaded prompt runs (`parallel_runs.executor`), which the
// lists keep but never render; that is noted for views/stock_labels.js.

import { normaliseFrom, SHOW_FROM } from "../state/show_scope.js";

export const CLIENT_PARAM = "parallel_client";
/** Options for the package's own requests that must see every client's prompts (stopping a
 * prompt looks it up in the whole queue): `api.fetchApi("/queue", ALL_CLIENTS)`. */
export const ALL_CLIENTS = Object.freeze({ parallelRunsAllClients: true });
const LIST_PATHS = new Set(["/jobs", "/queue", "/history"]);
const MAX_NOTED = 500;

/** The route's path without the /api prefix and query: "/api/jobs?x=1" -> "/jobs". */
export function bareRoute(route) {
  const path = String(route).split("?")[0];
  return path.startsWith("/api/") ? path.slice(4) : path;
}

function methodOf(options) {
  return String(options?.method ?? "GET").toUpperCase();
}

/** Whether a request lists prompts (GET) or clears a list (POST /queue, /history). Pure. */
export function isListRequest(route, options) {
  const path = bareRoute(route);
  if (!LIST_PATHS.has(path)) return false;
  const method = methodOf(options);
  return method === "GET" || (method === "POST" && path !== "/jobs");
}

/**
 * The route with this tab's client id added when the scope is this tab; unchanged otherwise
 * (every client, another route, no client id yet, the package's own ALL_CLIENTS). Pure.
 */
export function scopedRoute(route, options, { from, clientId }) {
  if (normaliseFrom(from) !== SHOW_FROM.TAB || !clientId || !isListRequest(route, options)) {
    return route;
  }
  if (options?.parallelRunsAllClients) return route;
  const text = String(route);
  const at = text.indexOf("?");
  const params = new URLSearchParams(at < 0 ? "" : text.slice(at + 1));
  params.set(CLIENT_PARAM, clientId);
  return `${at < 0 ? text : text.slice(0, at)}?${params}`;
}

function executorOf(info) {
  const executor = info?.executor;
  return typeof executor === "string" && executor && executor !== "local" ? executor : null;
}

/**
 * Where each offloaded prompt of a list answer runs: [[prompt id, executor], ...] from a
 * /jobs answer (`jobs[].parallel_runs`) or a /queue answer (`extra_data.parallel_runs` of each
 * item). Local prompts are not in it. Pure.
 */
export function executorsIn(route, body) {
  const path = bareRoute(route);
  const found = [];
  if (path === "/jobs") {
    for (const job of Array.isArray(body?.jobs) ? body.jobs : []) {
      const executor = executorOf(job?.parallel_runs);
      if (executor && typeof job.id === "string") found.push([job.id, executor]);
    }
  } else if (path === "/queue") {
    for (const key of ["queue_running", "queue_pending"]) {
      for (const item of Array.isArray(body?.[key]) ? body[key] : []) {
        const executor = Array.isArray(item) ? executorOf(item[3]?.parallel_runs) : null;
        if (executor && typeof item[1] === "string") found.push([item[1], executor]);
      }
    }
  }
  return found;
}

/** Remember `pairs` in `executors` (a Map), the newest MAX_NOTED kept. */
export function noteExecutors(executors, pairs) {
  for (const [id, executor] of pairs) {
    executors.delete(id);
    executors.set(id, executor);
  }
  while (executors.size > MAX_NOTED) executors.delete(executors.keys().next().value);
}

/**
 * Wrap api.fetchApi so list requests follow `scope` (createShowScope) and offloaded prompts'
 * executors land in `executors` (a Map; `onNoted()` after each answer that named some). When
 * the scope changes, the stock lists are reloaded by ComfyUI's own last `status` event, sent
 * again as it was (the frontends reload their lists on it). Returns an undo function.
 */
export function installQueueScope({ api, scope, clientId, executors, onNoted = () => {} }) {
  const original = api.fetchApi;

  async function fetchApi(route, options) {
    const asked = scopedRoute(route, options, { from: scope.from, clientId: clientId() });
    const response = await original.call(api, asked, options);
    if (methodOf(options) === "GET" && response?.ok && isListRequest(route, options)) {
      response
        .clone()
        .json()
        .then((body) => {
          const pairs = executorsIn(route, body);
          if (pairs.length === 0) return;
          noteExecutors(executors, pairs);
          onNoted();
        })
        .catch(() => {}); // not JSON: the frontend says so itself
    }
    return response;
  }

  let lastStatus = null;
  const onStatus = (event) => {
    if (event.detail) lastStatus = event.detail;
  };
  api.addEventListener("status", onStatus);
  const unsubscribe = scope.subscribe(() => {
    if (lastStatus) api.dispatchCustomEvent("status", lastStatus);
  });
  api.fetchApi = fetchApi;
  return () => {
    if (api.fetchApi === fetchApi) api.fetchApi = original;
    api.removeEventListener("status", onStatus);
    unsubscribe();
  };
}
