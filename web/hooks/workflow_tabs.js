// Parallel Runs: which workflow tab is on screen, and the per-tab output store of hidden tabs.
//
// A workflow tab is named by its root graph id: the id the frontend writes into the queued
// prompt's extra_pnginfo.workflow.id, so the server (GET /parallel/jobs) names the same tab.

/** The id a workflow tab's graph carries (what graph.serialize() writes as `id`). */
export function workflowKey(workflow) {
  return workflow?.activeState?.id ?? workflow?.initialState?.id ?? null;
}

/** Stock merge rule for `executed` with `merge: true`: list outputs append, others replace. */
export function mergeNodeOutput(previous, next, merge) {
  if (!merge || !previous) return next;
  const out = { ...previous };
  for (const [key, value] of Object.entries(next ?? {})) {
    out[key] = Array.isArray(previous[key]) ? previous[key].concat(value) : value;
  }
  return out;
}

/** Access to the frontend's workflow tabs through `app` (pinned 1.32 and newest 1.58 alike). */
export function createWorkflowTabs(app) {
  const workflows = () => app.extensionManager?.workflow ?? null;
  const rootGraph = () => app.rootGraph ?? app.graph ?? null;

  function visibleId() {
    const id = rootGraph()?.id;
    return id ? String(id) : workflowKey(workflows()?.activeWorkflow);
  }

  function find(workflowId) {
    const open = workflows()?.openWorkflows ?? [];
    return open.find((w) => workflowKey(w) === workflowId) ?? null;
  }

  function label(workflowId) {
    if (!workflowId) return "";
    const workflow = find(workflowId);
    return workflow?.filename ?? workflow?.path ?? String(workflowId).slice(0, 8);
  }

  /**
   * Keep an output of a hidden tab with that tab: its ChangeTracker's nodeOutputs is what the
   * frontend restores when the tab is shown again. Returns false when the tab is not open.
   */
  function keepOutput(workflowId, detail) {
    const tracker = find(workflowId)?.changeTracker;
    if (!tracker || detail?.node === undefined || detail?.node === null) return false;
    tracker.nodeOutputs ??= {};
    const key = String(detail.node);
    tracker.nodeOutputs[key] = mergeNodeOutput(tracker.nodeOutputs[key], detail.output, detail.merge);
    return true;
  }

  /**
   * Bring an open workflow tab on screen; resolves to whether it is now the visible one.
   * Both frontends' own tab click (workflowService.openWorkflow, not reachable from an
   * extension) ends in this same call: loadGraphData with the tab's ComfyWorkflow, which
   * stores the leaving tab's state and restores the arriving tab's (its outputs too). The
   * state is passed as a plain copy: the store's is a reactive proxy, which the frontend's
   * structured clone cannot copy.
   */
  async function show(workflowId) {
    const workflow = find(workflowId);
    if (!workflow) return false;
    if (visibleId() === workflowId) return true;
    if (workflow.isLoaded === false && typeof workflow.load === "function") await workflow.load();
    const state = workflow.activeState ?? workflow.initialState;
    if (!state || typeof app.loadGraphData !== "function") return false;
    await app.loadGraphData(JSON.parse(JSON.stringify(state)), true, true, workflow);
    return visibleId() === workflowId;
  }

  /** The visible tab's node title, for naming the node a prompt is on. */
  function nodeTitle(nodeId) {
    return rootGraph()?.getNodeById?.(nodeId)?.title ?? null;
  }

  /** The visible workflow's extra data (serialized into every prompt it queues). */
  function extra() {
    const graph = rootGraph();
    if (!graph) return null;
    graph.extra ??= {};
    return graph.extra;
  }

  /** Tell the frontend the visible workflow changed (marks the tab modified, saves it later). */
  function markChanged() {
    workflows()?.activeWorkflow?.changeTracker?.checkState?.();
    app.graph?.setDirtyCanvas?.(true, true);
  }

  return { visibleId, find, label, show, keepOutput, nodeTitle, extra, markChanged };
}
