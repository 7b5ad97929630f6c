// Parallel Runs: reading values off the wire. ComfyUI and the package's job summaries spell ids,
// times and outputs several ways; these helpers give the store one spelling of each.

/** ComfyUI event timestamps are ms since epoch; anything else means "no timestamp". */
export function eventMillis(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** Job summaries may carry ms, seconds (Python time.time()) or ISO strings. */
export function toMillis(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "string") {
    const asNumber = Number(value);
    if (Number.isFinite(asNumber)) return toMillis(asNumber);
    const parsed = Date.parse(value);
    return Number.isFinite(parsed) ? parsed : null;
  }
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  return value < 1e11 ? Math.round(value * 1000) : value;
}

/** Prompt and node ids arrive as numbers or strings; the store keys everything by string. */
export function idOf(value) {
  return value === null || value === undefined ? null : String(value);
}

/** Deep equality for outputs and node lists, so re-sent events change nothing. */
export function sameJson(a, b) {
  if (a === b) return true;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/** `executed` with `merge: true` appends list outputs (images of a batch) instead of replacing. */
export function mergeOutput(previous, next) {
  if (!previous || typeof previous !== "object" || !next || typeof next !== "object") return next;
  const merged = { ...previous };
  for (const [key, value] of Object.entries(next)) {
    merged[key] =
      Array.isArray(previous[key]) && Array.isArray(value) ? [...previous[key], ...value] : value;
  }
  return merged;
}
