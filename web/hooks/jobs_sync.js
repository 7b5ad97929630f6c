// Parallel Runs: rebuild the per-prompt view from GET /parallel/jobs (page load, reconnect).

/** Fetch the server's jobs and hand this client's ones to `dispatch` as parallel.snapshot. */
export async function syncJobs({ api, store, dispatch, clientId }) {
  const since = store.version;
  let response;
  try {
    response = await api.fetchApi("/parallel/jobs");
  } catch {
    return false;
  }
  if (!response.ok) return false;
  const { jobs = [] } = await response.json();
  const mine = jobs.filter((job) => !clientId || !job.client_id || job.client_id === clientId);
  dispatch({ jobs: mine, since_version: since });
  return true;
}
