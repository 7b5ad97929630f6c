// Shared by the tests of web/state/*: ComfyUI-shaped events and small fixtures (not a test file).
import { createStore } from "../../web/state/prompt_state.js";
import { createRegistry } from "../../web/state/registry.js";

/** A controllable clock: every call advances by 10 ms so timings are distinguishable. */
export function clock(start = 1_000) {
  let t = start;
  return () => (t += 10);
}

export function storeWith(options = {}) {
  return createStore({ now: clock(), ...options });
}

/** A bare registry (the store's internals) for testing one state module on its own. */
export function registryWith(options = {}) {
  return createRegistry({ now: clock(), ...options });
}

/** Event builders with ComfyUI's wire shapes (server.py / execution.py / progress.py). */
export const ev = {
  start: (prompt_id, timestamp) => ({ type: "execution_start", data: { prompt_id, timestamp } }),
  cached: (prompt_id, nodes) => ({ type: "execution_cached", data: { prompt_id, nodes } }),
  executing: (prompt_id, node) => ({
    type: "executing",
    data: { node, display_node: node, prompt_id },
  }),
  progress: (prompt_id, node, value, max) => ({
    type: "progress",
    data: { value, max, prompt_id, node },
  }),
  state: (prompt_id, nodes) => ({
    type: "progress_state",
    data: { prompt_id, nodes: stateMap(prompt_id, nodes) },
  }),
  executed: (prompt_id, node, output) => ({
    type: "executed",
    data: { node, display_node: node, output, prompt_id },
  }),
  success: (prompt_id, timestamp) => ({
    type: "execution_success",
    data: { prompt_id, timestamp },
  }),
  error: (prompt_id, node_id, message) => ({
    type: "execution_error",
    data: {
      prompt_id,
      node_id,
      node_type: "SlowPassthrough",
      executed: [],
      exception_message: message,
      exception_type: "RuntimeError",
      traceback: ["line 1"],
      current_inputs: {},
      current_outputs: [],
      timestamp: 9_000,
    },
  }),
  interrupted: (prompt_id, node_id) => ({
    type: "execution_interrupted",
    data: { prompt_id, node_id, node_type: "SlowPassthrough", executed: [], timestamp: 9_500 },
  }),
  text: (nodeId, text, prompt_id) => ({
    type: "progress_text",
    data: prompt_id === undefined ? { nodeId, text } : { nodeId, text, prompt_id },
  }),
  preview: (promptId, nodeId, blob, key = "promptId") => ({
    type: "b_preview_with_metadata",
    data: {
      blob,
      nodeId,
      displayNodeId: nodeId,
      parentNodeId: null,
      realNodeId: nodeId,
      [key]: promptId,
    },
  }),
  queued: (prompt_id, workflow_id, extra = {}) => ({
    type: "parallel.queued",
    data: { prompt_id, workflow_id, client_id: "c1", executor: "local", ...extra },
  }),
  job: (data) => ({ type: "parallel.job", data }),
};

/** progress_state's node map from {id: [value, max, state]}. */
export function stateMap(prompt_id, nodes) {
  return Object.fromEntries(
    Object.entries(nodes).map(([id, [value, max, state]]) => [
      id,
      {
        value,
        max,
        state,
        node_id: id,
        prompt_id,
        display_node_id: id,
        parent_node_id: null,
        real_node_id: id,
      },
    ]),
  );
}

/** A whole prompt, start to `executing null`, through the store. */
export function runPrompt(store, id, { nodes = ["1", "2"], steps = 2, outcome = "success" } = {}) {
  store.dispatch(ev.start(id));
  for (const node of nodes) {
    store.dispatch(ev.executing(id, node));
    for (let step = 1; step <= steps; step += 1) store.dispatch(ev.progress(id, node, step, steps));
    store.dispatch(ev.executed(id, node, { text: [`${id}:${node}`] }));
  }
  if (outcome === "success") store.dispatch(ev.success(id));
  else if (outcome === "error") store.dispatch(ev.error(id, nodes.at(-1), "boom"));
  store.dispatch({ type: "executing", data: { node: null, prompt_id: id } });
}

/** Feed `{type, data}` events to one module's handler table on a registry; unknown types throw. */
export function feed(handlers, reg, ...events) {
  return events.map(({ type, data }) => {
    if (!handlers[type]) throw new Error(`no handler for ${type} in this module`);
    return handlers[type](reg, data ?? null);
  });
}
