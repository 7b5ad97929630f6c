// Parallel Runs: how a prompt ends (execution_success, execution_error, execution_interrupted).
// The first explicit outcome wins; it may still replace one that was only inferred.

import { advance } from "./records.js";
import { ensure } from "./registry.js";
import { eventMillis, idOf } from "./values.js";

/**
 * Finish with `status`. advance() refuses once an explicit outcome is in, so `error` is written
 * only by the event that decided the outcome (or confirmed an inferred one).
 */
function finishWith(reg, status, data, error) {
  const rec = ensure(reg, data?.prompt_id);
  if (!rec) return false;
  const changed = advance(reg, rec, status, eventMillis(data.timestamp) ?? undefined);
  if (changed) rec.s.error = error;
  return changed;
}

/** The error fields the panel shows, from ComfyUI's execution_error message. */
function errorOf(data) {
  return {
    message: data?.exception_message ?? "",
    type: data?.exception_type ?? null,
    node_id: idOf(data?.node_id),
    node_type: data?.node_type ?? null,
    traceback: data?.traceback ?? null,
    executed: data?.executed ?? null,
  };
}

/** Event type -> handler(reg, data). */
export const OUTCOME_HANDLERS = Object.freeze({
  execution_success: (reg, data) => finishWith(reg, "success", data, null),
  execution_error: (reg, data) => finishWith(reg, "error", data, errorOf(data)),
  execution_interrupted: (reg, data) => finishWith(reg, "interrupted", data, null),
});
