// Parallel Runs: the package's own job events. parallel.queued (the queue hook's announcement),
// parallel.job (a server-side job summary, e.g. of an offloaded prompt) and parallel.snapshot
// (every job the server knows, after a websocket reconnect) fill in what ComfyUI's events lack:
// workflow tab, executor, remote status, warnings and outcomes of prompts that ran elsewhere.

import { advance, isStatus, isTerminal, touch } from "./records.js";
import { ensure, forget } from "./registry.js";
import { idOf, sameJson, toMillis } from "./values.js";

const INFO_KEYS = ["executor", "client_id", "workflow_id", "number", "remote_status"];
const TIME_KEYS = ["queued_at", "started_at", "finished_at"];

/** Copy descriptive fields the package knows (workflow tab, executor, ...) without downgrading. */
function assignInfo(rec, info) {
  const s = rec.s;
  let changed = false;
  for (const key of INFO_KEYS) {
    const value = info[key];
    if (value === undefined || value === null || s[key] === value) continue;
    s[key] = value;
    changed = true;
  }
  if (Array.isArray(info.node_ids) && !sameJson(s.node_ids, info.node_ids)) {
    s.node_ids = info.node_ids.map(String);
    changed = true;
  }
  for (const key of TIME_KEYS) {
    const at = toMillis(info[key]);
    if (at !== null && s[key] === null) {
      s[key] = at;
      changed = true;
    }
  }
  return changed;
}

/** The queue hook announces a prompt; its queue time is now unless the announcement says. */
function onQueued(reg, data) {
  const rec = ensure(reg, data?.prompt_id);
  if (!rec) return false;
  let changed = assignInfo(rec, data);
  if (rec.s.queued_at === null) {
    rec.s.queued_at = reg.now();
    changed = true;
  }
  return changed ? touch(reg, rec) : false;
}

/** Apply one server-side job summary (from parallel.job or a snapshot). */
function applyJob(reg, job) {
  const rec = ensure(reg, job?.prompt_id);
  if (!rec) return false;
  let changed = assignInfo(rec, job);
  if ("warning" in job && (job.warning ?? null) !== rec.s.warning) {
    rec.s.warning = typeof job.warning === "string" ? job.warning : null; // null: recovered
    changed = true;
  }
  const status = job.status;
  if (isStatus(status) && advance(reg, rec, status, toMillis(job.finished_at) ?? undefined)) {
    changed = true;
    if (status === "error" && job.error) rec.s.error = normaliseError(job.error);
  }
  if (job.outputs && typeof job.outputs === "object") {
    for (const [nodeId, output] of Object.entries(job.outputs)) {
      if (sameJson(rec.s.outputs[nodeId], output)) continue;
      rec.s.outputs[nodeId] = output;
      changed = true;
    }
  }
  return changed ? touch(reg, rec) : false;
}

/** Job errors are a string or a ComfyUI-style object; the panel reads one shape. */
function normaliseError(error) {
  if (typeof error === "string") return { message: error, node_id: null, node_type: null };
  return {
    ...error,
    message: error.message ?? error.exception_message ?? "",
    node_id: idOf(error.node_id),
    node_type: error.node_type ?? null,
  };
}

/**
 * Rebuild after a websocket reconnect. Jobs in the snapshot are merged (terminal stays sticky);
 * queued/running prompts the server no longer knows are removed, unless they changed after
 * `since_version` (the store.version read before the snapshot was requested).
 */
function onSnapshot(reg, data) {
  const jobs = Array.isArray(data?.jobs) ? data.jobs : [];
  const since = typeof data?.since_version === "number" ? data.since_version : null;
  const known = new Set();
  let changed = false;
  const finishedFirst = [...jobs].sort(
    (a, b) => (toMillis(a?.finished_at) ?? 0) - (toMillis(b?.finished_at) ?? 0),
  );
  for (const job of finishedFirst) {
    if (job?.prompt_id === undefined || job?.prompt_id === null) continue;
    known.add(String(job.prompt_id));
    if (applyJob(reg, job)) changed = true;
  }
  for (const [id, rec] of [...reg.records]) {
    if (known.has(id) || isTerminal(rec.s.status)) continue;
    if (since !== null && rec.touched > since) continue;
    forget(reg, id, "removed");
    changed = true;
  }
  return changed;
}

/** Event type -> handler(reg, data). */
export const JOB_HANDLERS = Object.freeze({
  "parallel.queued": onQueued,
  "parallel.job": applyJob,
  "parallel.snapshot": onSnapshot,
});
