// Parallel Runs: rebuild the per-prompt view from GET /parallel/jobs (page load, reconnect, and
// a steady refresh while the panel shows every client's prompts).

import { jobInScope } from "../state/show_scope.js";

/**
 * Fetch the server's jobs and hand those in `scope` (createShowScope) to `dispatch` as
 * parallel.snapshot. Returns false when the server could not be asked.
 */
export async function syncJobs({ api, store, dispatch, clientId, scope }) {
  const since = store.version;
  let response;
  try {
    response = await api.fetchApi("/parallel/jobs");
  } catch {
    return false;
  }
  if (!response.ok) return false;
  const { jobs = [] } = await response.json();
  scope?.noteListed(jobs);
  const from = scope?.from;
  dispatch({ jobs: jobs.filter((job) => jobInScope(job, { from, clientId })), since_version: since });
  return true;
}
