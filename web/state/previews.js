// Parallel Runs: the latest preview image of each prompt. Only one is kept per prompt; every
// preview that leaves the store (replaced, dropped, pruned, removed) is reported through
// reg.onPreviewEvicted so the DOM layer can revoke the object URL it made for it.

import { soleRunning, resolve } from "./attribution.js";
import { isTerminal, markActive, releasePreview, touch } from "./records.js";
import { idOf } from "./values.js";

/** `b_preview_with_metadata`: the frontend names the prompt promptId, jobId or prompt_id. */
function onPreview(reg, data) {
  const promptId = data?.promptId ?? data?.jobId ?? data?.prompt_id ?? null;
  const nodeId = idOf(data?.nodeId ?? data?.node_id ?? data?.node);
  const rec = resolve(reg, promptId, nodeId);
  const preview = {
    node: nodeId,
    display_node: idOf(data?.displayNodeId ?? data?.display_node_id) ?? nodeId,
    parent_node: idOf(data?.parentNodeId ?? data?.parent_node_id),
    real_node: idOf(data?.realNodeId ?? data?.real_node_id),
    blob_or_url: data?.blob ?? data?.url ?? null,
    at: reg.now(),
  };
  if (!rec || isTerminal(rec.s.status)) {
    releasePreview(reg, preview, rec?.s.prompt_id ?? idOf(promptId), "dropped");
    return false;
  }
  return setPreview(reg, rec, preview);
}

/** Stock `b_preview` is a bare Blob: only the single running prompt can own it. */
function onLegacyPreview(reg, data) {
  const blob = data?.blob ?? data;
  const rec = soleRunning(reg);
  if (!rec) {
    releasePreview(reg, { node: null, blob_or_url: blob }, null, "dropped");
    return false;
  }
  const node = rec.s.current_node;
  return setPreview(reg, rec, {
    node,
    display_node: rec.s.nodes[node]?.display_node_id ?? node,
    parent_node: null,
    real_node: null,
    blob_or_url: blob,
    at: reg.now(),
  });
}

/** Keep `preview` as the prompt's latest, reporting the one it replaces; same image: no change. */
function setPreview(reg, rec, preview) {
  const old = rec.s.preview;
  if (old && old.blob_or_url === preview.blob_or_url && old.node === preview.node) return false;
  releasePreview(reg, old, rec.s.prompt_id, "replaced");
  rec.s.preview = preview;
  markActive(reg, rec);
  return touch(reg, rec);
}

/** Event type -> handler(reg, data). */
export const PREVIEW_HANDLERS = Object.freeze({
  b_preview_with_metadata: onPreview,
  b_preview: onLegacyPreview,
});
