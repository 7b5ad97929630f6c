// Parallel Runs: keep canvas progress, node progress text and node outputs in the workflow tab
// that queued the prompt.
//
// Why this way: the stock frontend paints whatever execution event arrives onto the visible
// graph (app.ts `executed` -> useNodeOutputStore, executionStore `progress_state` ->
// nodeProgressStates, `progress_text` -> a widget on the visible node with that id), matching
// nodes by id only, so a prompt from tab A paints tab B. Its listeners are plain `api` listeners
// and every websocket event goes through `api.dispatchCustomEvent`. Wrapping that one method on
// the api instance is the least invasive real hook: we see each event first, feed our store,
// and pass it on unchanged unless it would paint a tab it does not belong to. Then we hold it:
// - `executed` outputs go into the owning tab's ChangeTracker.nodeOutputs, which the frontend
//   itself restores when the user switches back to that tab (same as its own per-tab outputs);
// - progress (`progress_state`, `progress`, `executing`, previews, progress text) is dropped
//   for the canvas (the panel still shows it); on a tab switch the latest `progress_state` of
//   the newly visible tab's running prompt is replayed, or the previous tab's paint is cleared.
// Lifecycle events (execution_start/success/error/interrupted/cached, status) always pass, so
// the stock queue state stays right. Prompts we did not see queued (other tools) pass as stock.
// `executing`, legacy `b_preview` and (on older frontends) `progress_text` carry no prompt id:
// they belong to the prompt of the latest event that named one (one local prompt runs at a time).

const CANVAS_EVENTS = new Set([
  "executing",
  "progress",
  "progress_state",
  "executed",
  "b_preview",
  "b_preview_with_metadata",
  "progress_text",
]);
const STORE_EVENTS = new Set([
  ...CANVAS_EVENTS,
  "execution_start",
  "execution_cached",
  "execution_success",
  "execution_error",
  "execution_interrupted",
  "status",
]);
const TERMINAL_EVENTS = new Set(["execution_success", "execution_error", "execution_interrupted"]);

function explicitPromptId(type, detail) {
  if (!detail || typeof detail !== "object") return null;
  if (type === "b_preview_with_metadata") return detail.promptId ?? detail.jobId ?? null;
  return detail.prompt_id ?? null;
}

/**
 * Install the scope on `api`. `tabs` is createWorkflowTabs(app). Returns {uninstall, check,
 * stats}; `check()` notices a tab switch (also run on a timer of `intervalMs`) and then calls
 * `onSwitch(id)`, so other views follow tab switches without a timer of their own.
 */
export function installCanvasScope({ api, store, tabs, intervalMs = 250, onSwitch = () => {} }) {
  const original = api.dispatchCustomEvent;
  const lastProgressState = new Map();
  const stats = { passed: 0, held: 0, kept_outputs: 0 };
  let current = null;
  let pairedLegacyPreview = false;
  let painted = null;
  let visible = tabs.visibleId();

  const ownerOf = (promptId) => (promptId ? (store.get(promptId)?.workflow_id ?? null) : null);

  function promptOf(type, detail) {
    const explicit = explicitPromptId(type, detail);
    if (explicit) {
      current = String(explicit);
      return current;
    }
    return type === "status" ? null : current;
  }

  /** The store wants a prompt id where we know it; bare `executing` ids get ours. */
  function feed(type, detail, promptId) {
    let data = detail;
    if (type === "executing" && promptId && (typeof detail === "string" || detail === null)) {
      data = { node: detail, display_node: detail, prompt_id: promptId };
    } else if (type === "progress_text" && promptId && detail && !detail.prompt_id) {
      data = { ...detail, prompt_id: promptId };
    }
    try {
      store.dispatch({ type, data });
    } catch (error) {
      console.error("[parallel-runs] store rejected", type, error);
    }
  }

  function belongsElsewhere(type, promptId) {
    if (!CANVAS_EVENTS.has(type)) return false;
    const owner = ownerOf(promptId);
    return owner !== null && owner !== tabs.visibleId();
  }

  function dispatch(type, ...rest) {
    if (!STORE_EVENTS.has(type)) return original.call(api, type, ...rest);
    const detail = rest[0];
    const legacyPair = type === "b_preview" && pairedLegacyPreview;
    pairedLegacyPreview = type === "b_preview_with_metadata";
    const promptId = promptOf(type, detail);
    if (!legacyPair) feed(type, detail, promptId);
    if (type === "progress_state" && promptId) lastProgressState.set(promptId, detail);
    if (TERMINAL_EVENTS.has(type)) {
      lastProgressState.delete(promptId);
      if (painted === promptId) painted = null;
    }
    if (!belongsElsewhere(type, promptId)) {
      stats.passed += 1;
      if (type === "progress_state") painted = promptId;
      return original.call(api, type, ...rest);
    }
    stats.held += 1;
    if (type === "executed" && tabs.keepOutput(ownerOf(promptId), detail)) stats.kept_outputs += 1;
    return true;
  }

  /** On a tab switch: show the new tab's running progress, or clear what the old tab showed. */
  function check() {
    const now = tabs.visibleId();
    if (now === visible) return false;
    visible = now;
    onSwitch(now);
    const mine = store.all().find((s) => s.status === "running" && s.workflow_id === now);
    const detail = mine && lastProgressState.get(mine.prompt_id);
    if (detail) {
      painted = mine.prompt_id;
      original.call(api, "progress_state", detail);
    } else if (painted && ownerOf(painted) !== now) {
      original.call(api, "progress_state", { prompt_id: painted, nodes: {} });
      painted = null;
    }
    return true;
  }

  api.dispatchCustomEvent = dispatch;
  const timer = setInterval(check, intervalMs);
  return {
    check,
    stats,
    uninstall() {
      clearInterval(timer);
      if (api.dispatchCustomEvent === dispatch) api.dispatchCustomEvent = original;
    },
  };
}
