// Parallel Runs: per-prompt execution state, fed by ComfyUI's websocket events.
//
// The store: a map prompt_id -> PromptState, composed of the pure modules beside this one
// (registry: which prompts are held; records: a prompt and its status; progress, previews,
// outcomes, jobs: folding each kind of event; attribution: events without a prompt id;
// selectors: derived views). No DOM, no `app`/`api` import, no module-level mutable state:
// everything lives in the store instance returned by createStore(), so tests and benchmarks can
// run many side by side.

import { JOB_HANDLERS } from "./jobs.js";
import { OUTCOME_HANDLERS } from "./outcomes.js";
import { PREVIEW_HANDLERS } from "./previews.js";
import { PROGRESS_HANDLERS } from "./progress.js";
import { createRegistry, forget, normaliseCap, prune } from "./registry.js";
import { displayOrder } from "./selectors.js";
import { idOf } from "./values.js";

export { TERMINAL_STATUSES } from "./records.js";
export { aggregateProgress, nodeProgress, promptProgress } from "./selectors.js";

/** Event type -> handler(reg, data) returning true when the state changed. */
const HANDLERS = Object.freeze({
  ...PROGRESS_HANDLERS,
  ...PREVIEW_HANDLERS,
  ...OUTCOME_HANDLERS,
  ...JOB_HANDLERS,
});

/** Default for listener errors: report them as uncaught, outside dispatch. */
function rethrowLater(error) {
  queueMicrotask(() => {
    throw error;
  });
}

/**
 * Create a per-prompt state store.
 * @param {{cap?: number, now?: () => number,
 *          onPreviewEvicted?: (preview: object, promptId: string, reason: string) => void,
 *          onListenerError?: (error: unknown) => void}} [options]
 *   cap: how many finished prompts to keep (running/queued prompts are never pruned).
 *   onPreviewEvicted: called when a preview leaves the store ("replaced", "pruned", "removed",
 *   "dropped") so the DOM layer can revoke object URLs it created.
 *   onListenerError: receives errors thrown by subscribers (default: rethrown in a microtask).
 */
export function createStore({
  cap = 50,
  now = () => Date.now(),
  onPreviewEvicted = null,
  onListenerError = rethrowLater,
} = {}) {
  const reg = createRegistry({ cap, now, onPreviewEvicted });
  const listeners = new Set();
  let sortedCache = null;
  let sortedVersion = -1;

  /** Tell every subscriber; one broken listener must not stop the others or corrupt dispatch. */
  function notify() {
    if (listeners.size === 0) return;
    for (const fn of listeners) {
      try {
        fn(store);
      } catch (error) {
        onListenerError(error);
      }
    }
  }

  /** A change happened: prune beyond the cap, publish a new version. */
  function commit() {
    if (reg.finishedOrder.size > reg.limit) prune(reg);
    reg.version += 1;
    notify();
  }

  const store = {
    /** Apply one event; returns true when the state changed. Unknown event types are ignored. */
    dispatch(event) {
      const handler = event && HANDLERS[event.type];
      if (!handler) return false;
      const changed = handler(reg, event.data ?? null);
      if (changed) commit();
      return changed;
    },
    /** fn(store) after each change; returns the unsubscribe function. */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    get(promptId) {
      return reg.records.get(idOf(promptId))?.s;
    },
    /** Running first, then queued, then finished; newest first within each group. */
    all() {
      if (sortedVersion !== reg.version || sortedCache === null) {
        sortedCache = displayOrder(reg.records.values());
        sortedVersion = reg.version;
      }
      return sortedCache.slice();
    },
    /** Change how many finished prompts are kept (settings UI); prunes at once. */
    setCap(n) {
      reg.limit = normaliseCap(n);
      if (prune(reg)) {
        reg.version += 1;
        notify();
      }
    },
    /** Forget a prompt (e.g. the user dismissed it); late events for it are ignored. */
    remove(promptId) {
      const id = idOf(promptId);
      if (!reg.records.has(id)) return false;
      forget(reg, id, "removed");
      reg.version += 1;
      notify();
      return true;
    },
    get version() {
      return reg.version;
    },
    /** How many prompts are held (bench/prompt_state_bench.mjs checks the cap with it). */
    get size() {
      return reg.records.size;
    },
    /** Events without a prompt id that could not be attributed unambiguously (dropped). */
    get unattributed() {
      return reg.unattributed;
    },
  };
  return store;
}
