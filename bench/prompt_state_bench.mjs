// Benchmark: per-prompt store (web/state/prompt_state.js) vs a single-active-prompt baseline.
//
// Run: node --expose-gc bench/prompt_state_bench.mjs [--rounds N] [--warmup N] [--total N]
//      [--concurrent N] [--cap N] [--seed N]
//
// A seeded generator produces a recorded-style stream of ComfyUI websocket events for many
// prompts in flight at once (execution_start, execution_cached, executing, progress and
// progress_state per step, progress_text, b_preview_with_metadata, executed, execution_success,
// a few execution_error). The same stream goes through both stores in the same run, alternating
// which goes first. The baseline models the data work of the stock frontend's executionStore
// (comfyui-frontend-package 1.32.9, pinned by ComfyUI 0.3.75): one activePromptId, per
// progress_state a walk of the node map, a re-spread of nodeProgressStatesByPrompt and the
// executingNodeId computed. A minimal O(1) single-active store is also timed, as a reference
// floor. The target ratio uses the median of per-round paired ratios; nothing is asserted.
import { createStore } from "../web/state/prompt_state.js";

const TARGET_RATIO = 0.9;

function parseArgs(argv) {
  const options = {
    rounds: 25,
    warmup: 4,
    total: 400,
    concurrent: 50,
    cap: 50,
    seed: 20240601,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in options)) throw new Error(`unknown option ${argv[i]}`);
    options[key] = Number(argv[i + 1]);
  }
  return options;
}

/** mulberry32: small deterministic PRNG so every run replays the same stream. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Stream generation
// ---------------------------------------------------------------------------------------------

/** All events of one prompt in server order, as a lazy generator. */
function* promptEvents(promptId, random, makeBlob, clock) {
  const nodeCount = 4 + Math.floor(random() * 5);
  const nodes = Array.from({ length: nodeCount }, (_, i) => String(i + 1));
  const failAt = random() < 0.04 ? 1 + Math.floor(random() * (nodeCount - 1)) : -1;
  const progress = {};
  const stateMessage = () => ({
    type: "progress_state",
    data: {
      prompt_id: promptId,
      nodes: Object.fromEntries(
        Object.entries(progress).map(([id, p]) => [
          id,
          {
            value: p.value,
            max: p.max,
            state: p.state,
            node_id: id,
            prompt_id: promptId,
            display_node_id: id,
            parent_node_id: null,
            real_node_id: id,
          },
        ]),
      ),
    },
  });
  yield { type: "execution_start", data: { prompt_id: promptId, timestamp: clock() } };
  yield { type: "execution_cached", data: { prompt_id: promptId, nodes: [], timestamp: clock() } };
  for (let index = 0; index < nodes.length; index += 1) {
    const node = nodes[index];
    yield { type: "executing", data: { node, display_node: node, prompt_id: promptId } };
    const steps = 5 + Math.floor(random() * 16);
    progress[node] = { value: 0, max: steps, state: "running" };
    yield stateMessage();
    if (index === failAt) {
      yield {
        type: "execution_error",
        data: {
          prompt_id: promptId,
          node_id: node,
          node_type: "KSampler",
          executed: nodes.slice(0, index),
          exception_message: "CUDA out of memory",
          exception_type: "torch.OutOfMemoryError",
          traceback: ["  File execution.py, line 1"],
          current_inputs: {},
          current_outputs: [],
          timestamp: clock(),
        },
      };
      yield { type: "executing", data: { node: null, prompt_id: promptId } };
      return;
    }
    for (let step = 1; step <= steps; step += 1) {
      progress[node].value = step;
      yield { type: "progress", data: { value: step, max: steps, prompt_id: promptId, node } };
      yield stateMessage();
      if (step % 3 === 0) {
        yield {
          type: "progress_text",
          data: { nodeId: node, text: `step ${step}/${steps}`, prompt_id: promptId },
        };
      }
      if (step % 4 === 0) {
        yield {
          type: "b_preview_with_metadata",
          data: {
            blob: makeBlob(),
            nodeId: node,
            displayNodeId: node,
            parentNodeId: null,
            realNodeId: node,
            promptId,
          },
        };
      }
    }
    progress[node].state = "finished";
    yield stateMessage();
    if (index >= nodeCount - 2) {
      yield {
        type: "executed",
        data: {
          node,
          display_node: node,
          prompt_id: promptId,
          output: {
            images: [{ filename: `${promptId}_${node}.png`, subfolder: "", type: "output" }],
          },
        },
      };
    }
  }
  yield { type: "execution_success", data: { prompt_id: promptId, timestamp: clock() } };
  yield { type: "executing", data: { node: null, prompt_id: promptId } };
}

/** Events reach the frontend through JSON.parse (binary previews excepted): give them that shape. */
function wireCopy(event) {
  return event.type === "b_preview_with_metadata" ? event : JSON.parse(JSON.stringify(event));
}

/**
 * Interleave prompts: `concurrent` run at once, a random one emits its next 1-3 events, and a
 * finished prompt is replaced by a new one until `total` prompts have run. Calls onFinished(n).
 */
function* interleavedStream({ total, concurrent, seed }, makeBlob, onFinished = () => {}) {
  const random = rng(seed);
  let t = 1_700_000_000_000;
  const clock = () => (t += 7);
  let started = 0;
  let finished = 0;
  const active = [];
  const startOne = () => {
    const id = `prompt-${String(started).padStart(5, "0")}`;
    started += 1;
    active.push(promptEvents(id, random, makeBlob, clock));
  };
  while (started < Math.min(total, concurrent)) startOne();
  while (active.length > 0) {
    const pick = Math.floor(random() * active.length);
    const burst = 1 + Math.floor(random() * 3);
    for (let i = 0; i < burst; i += 1) {
      const next = active[pick].next();
      if (next.done) {
        active.splice(pick, 1);
        finished += 1;
        onFinished(finished);
        if (started < total) startOne();
        break;
      }
      yield wireCopy(next.value);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Baseline: single active prompt, modelled on the stock frontend's executionStore
// ---------------------------------------------------------------------------------------------

/** Plain-object store shared by both baselines: dispatch, version, listeners. */
function baselineStore(state, handlers) {
  const listeners = new Set();
  let version = 0;
  const store = {
    state,
    dispatch(event) {
      const handler = handlers[event.type];
      if (!handler) return false;
      handler(event.data);
      version += 1;
      for (const fn of listeners) fn(store);
      return true;
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    get version() {
      return version;
    },
  };
  return store;
}

/**
 * The data work of the executionStore in comfyui-frontend-package 1.32.9 (the frontend ComfyUI
 * 0.3.75 pins; src/stores/executionStore.ts in its source map), without Vue reactivity, plus
 * the app-level `executed`/`b_preview_with_metadata`/`progress_text` listeners reduced to
 * storing what they receive. One activePromptId; per progress_state it walks the map for newly
 * running nodes, re-spreads nodeProgressStatesByPrompt, replaces nodeProgressStates and reads
 * the `executingNodeId` computed (first running node of that map).
 */
function createStockExecutionStore({
  onPreviewReplaced = () => {},
  onNodeStarted = () => {},
} = {}) {
  const state = {
    activePromptId: null,
    queuedPrompts: {},
    lastExecutionError: null,
    nodeProgressStates: {},
    nodeProgressStatesByPrompt: {},
    executingNodeProgress: null,
    initializingPromptIds: new Set(),
    nodeOutputs: {},
    progressText: {},
    preview: null,
  };
  // `executingNodeIds`/`executingNodeId` are computed refs: re-evaluated when read after
  // nodeProgressStates changed, cached otherwise.
  let executingFor = null;
  let executingNodeId = null;
  const readExecutingNodeId = () => {
    if (executingFor !== state.nodeProgressStates) {
      executingFor = state.nodeProgressStates;
      const ids = Object.entries(executingFor)
        .filter(([, s]) => s.state === "running")
        .map(([id]) => id);
      executingNodeId = ids[0] ?? null;
    }
    return executingNodeId;
  };
  const activePrompt = () => state.queuedPrompts[state.activePromptId ?? ""];
  const clearInitialization = (promptId) => {
    if (!promptId || !state.initializingPromptIds.has(promptId)) return;
    const next = new Set(state.initializingPromptIds);
    next.delete(promptId);
    state.initializingPromptIds = next;
  };
  const reset = (promptId) => {
    state.nodeProgressStates = {};
    const pid = promptId ?? state.activePromptId ?? null;
    if (pid) {
      const map = { ...state.nodeProgressStatesByPrompt };
      delete map[pid];
      state.nodeProgressStatesByPrompt = map;
    }
    if (state.activePromptId) delete state.queuedPrompts[state.activePromptId];
    state.activePromptId = null;
    state.executingNodeProgress = null;
  };
  return baselineStore(state, {
    execution_start(d) {
      state.lastExecutionError = null;
      state.activePromptId = d.prompt_id;
      state.queuedPrompts[d.prompt_id] ??= { nodes: {} };
      clearInitialization(d.prompt_id);
    },
    execution_cached(d) {
      const job = activePrompt();
      if (job) for (const n of d.nodes) job.nodes[n] = true;
    },
    // api.ts re-dispatches `executing` with detail = display_node || node.
    executing(d) {
      const detail = d && typeof d === "object" ? d.display_node || d.node : d;
      state.executingNodeProgress = null;
      if (!activePrompt()) return;
      if (typeof detail !== "string") {
        if (state.activePromptId) delete state.queuedPrompts[state.activePromptId];
        state.activePromptId = null;
      }
    },
    progress(d) {
      state.executingNodeProgress = d;
    },
    progress_state(d) {
      const { nodes, prompt_id: pid } = d;
      const previous = state.nodeProgressStatesByPrompt[pid] || {};
      for (const nodeId in nodes) {
        if (nodes[nodeId].state === "running" && !previous[nodeId]) onNodeStarted(nodeId);
      }
      state.nodeProgressStatesByPrompt = { ...state.nodeProgressStatesByPrompt, [pid]: nodes };
      state.nodeProgressStates = nodes;
      const executing = readExecutingNodeId();
      if (executing && nodes[executing]) {
        const node = nodes[executing];
        state.executingNodeProgress = {
          value: node.value,
          max: node.max,
          prompt_id: node.prompt_id,
          node: node.display_node_id || node.node_id,
        };
      }
    },
    executed(d) {
      const job = activePrompt();
      if (job) job.nodes[d.node] = true;
      state.nodeOutputs[d.display_node || d.node] = d.output;
    },
    execution_success(d) {
      reset(d.prompt_id);
    },
    execution_error(d) {
      state.lastExecutionError = d;
      clearInitialization(d.prompt_id);
      reset(d.prompt_id);
    },
    execution_interrupted(d) {
      clearInitialization(state.activePromptId);
      reset(d.prompt_id);
    },
    b_preview_with_metadata(d) {
      if (state.preview) onPreviewReplaced(state.preview);
      state.preview = { blob: d.blob, node: d.displayNodeId };
    },
    progress_text(d) {
      state.progressText[d.nodeId] = d.text;
    },
  });
}

/**
 * Reference only (not the target's baseline): the leanest single-active-prompt store, O(1) per
 * event -- progress_state just replaces the nodes map. A floor no real frontend store reaches.
 */
function createMinimalSingleActiveStore({ onPreviewReplaced = () => {} } = {}) {
  const state = {
    activePromptId: null,
    queuedPrompts: {},
    nodeProgressStates: {},
    executingNodeId: null,
    executingNodeProgress: null,
    nodeOutputs: {},
    progressText: {},
    preview: null,
  };
  const reset = (promptId) => {
    delete state.queuedPrompts[promptId];
    if (state.activePromptId === promptId) {
      state.activePromptId = null;
      state.nodeProgressStates = {};
      state.executingNodeProgress = null;
    }
  };
  return baselineStore(state, {
    execution_start(d) {
      state.activePromptId = d.prompt_id;
      state.queuedPrompts[d.prompt_id] ??= { nodes: {} };
    },
    execution_cached(d) {
      const job = state.queuedPrompts[state.activePromptId];
      if (job) for (const n of d.nodes) job.nodes[n] = true;
    },
    executing(d) {
      state.executingNodeProgress = null;
      const node = d && typeof d === "object" ? (d.display_node ?? d.node) : d;
      state.executingNodeId = node;
      if (!state.queuedPrompts[state.activePromptId]) return;
      if (node == null) state.activePromptId = null;
    },
    progress(d) {
      state.executingNodeProgress = d;
    },
    progress_state(d) {
      state.nodeProgressStates = d.nodes;
      const node = state.executingNodeId && d.nodes[state.executingNodeId];
      if (node) {
        state.executingNodeProgress = {
          value: node.value,
          max: node.max,
          prompt_id: node.prompt_id,
          node: node.display_node_id || node.node_id,
        };
      }
    },
    executed(d) {
      const job = state.queuedPrompts[state.activePromptId];
      if (job) job.nodes[d.node] = true;
      state.nodeOutputs[d.display_node || d.node] = d.output;
    },
    execution_success(d) {
      reset(d.prompt_id);
    },
    execution_error(d) {
      reset(d.prompt_id);
    },
    execution_interrupted(d) {
      reset(d.prompt_id);
    },
    b_preview_with_metadata(d) {
      if (state.preview) onPreviewReplaced(state.preview);
      state.preview = { blob: d.blob, node: d.displayNodeId };
    },
    progress_text(d) {
      state.progressText[d.nodeId] = d.text;
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------------

function timeDispatch(store, events) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < events.length; i += 1) store.dispatch(events[i]);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function fmt(n, digits = 0) {
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

function gc() {
  if (typeof globalThis.gc === "function") {
    globalThis.gc();
    globalThis.gc();
  }
}

function throughput(options) {
  const blobs = Array.from({ length: 64 }, (_, i) => new Blob([new Uint8Array(512).fill(i)]));
  let b = 0;
  const events = [...interleavedStream(options, () => blobs[b++ % blobs.length])];
  const counts = {};
  for (const e of events) counts[e.type] = (counts[e.type] ?? 0) + 1;
  console.log(
    `stream: ${fmt(events.length)} events, ${options.total} prompts, ${options.concurrent} at once, ` +
      `seed ${options.seed}`,
  );
  console.log(
    `  by type: ${Object.entries(counts)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}`,
  );

  const noop = () => {};
  const makers = {
    store: () => createStore({ cap: options.cap, onPreviewEvicted: noop }),
    baseline: () => createStockExecutionStore({ onPreviewReplaced: noop, onNodeStarted: noop }),
    minimal: () => createMinimalSingleActiveStore({ onPreviewReplaced: noop }),
  };
  const names = Object.keys(makers);
  const fresh = (which) => {
    const store = makers[which]();
    store.subscribe(noop);
    return store;
  };
  // Warm-up (JIT) for all, not measured; every store gets the same pre-built event objects.
  for (let i = 0; i < options.warmup; i += 1) {
    for (const which of names) timeDispatch(fresh(which), events);
  }
  const rates = { store: [], baseline: [], minimal: [] };
  const ratios = { baseline: [], minimal: [] };
  let check = null;
  for (let round = 0; round < options.rounds; round += 1) {
    // Rotate which store runs first, so none always gets the warmer or quieter slot.
    const order = names.map((_, i) => names[(i + round) % names.length]);
    const seconds = {};
    for (const which of order) {
      const store = fresh(which);
      gc();
      seconds[which] = timeDispatch(store, events);
      rates[which].push(events.length / seconds[which]);
      if (which === "store") check = store;
    }
    ratios.baseline.push(seconds.baseline / seconds.store);
    ratios.minimal.push(seconds.minimal / seconds.store);
    console.log(
      `  round ${String(round + 1).padStart(2)}: stock baseline ${fmt(events.length / seconds.baseline).padStart(10)} ev/s, ` +
        `per-prompt store ${fmt(events.length / seconds.store).padStart(10)} ev/s, ` +
        `minimal ${fmt(events.length / seconds.minimal).padStart(10)} ev/s, ` +
        `ratio ${fmt(ratios.baseline.at(-1), 3)} (vs minimal ${fmt(ratios.minimal.at(-1), 3)})`,
    );
  }
  // The machine is shared: the best round of each is the least disturbed measurement; the
  // median of per-round (paired) ratios cancels load that hits both runs of a round.
  const best = (which) => Math.max(...rates[which]);
  console.log(
    `throughput best of ${options.rounds}: stock baseline ${fmt(best("baseline"))} ev/s, ` +
      `per-prompt store ${fmt(best("store"))} ev/s, ratio ${fmt(best("store") / best("baseline"), 3)}`,
  );
  console.log(
    `throughput median: stock baseline ${fmt(median(rates.baseline))} ev/s, per-prompt store ` +
      `${fmt(median(rates.store))} ev/s, median paired ratio ${fmt(median(ratios.baseline), 3)}`,
  );
  const ratio = median(ratios.baseline);
  console.log(
    `ratio per-prompt/stock baseline (median paired): ${fmt(ratio, 3)} (target >= ${TARGET_RATIO}: ` +
      `${ratio >= TARGET_RATIO ? "met" : "NOT met"})`,
  );
  console.log(
    `reference, minimal O(1) single-active store: best ${fmt(best("minimal"))} ev/s, ` +
      `median paired ratio per-prompt/minimal ${fmt(median(ratios.minimal), 3)}, best-round ratio ` +
      `${fmt(best("store") / best("minimal"), 3)}`,
  );
  const statuses = {};
  for (const s of check.all()) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
  console.log(
    `  sanity: store kept ${check.size} prompts (cap ${options.cap}), statuses ${JSON.stringify(statuses)}, ` +
      `unattributed ${check.unattributed}`,
  );
}

function memory(options) {
  const total = Math.max(options.total, 20 * options.cap);
  const every = Math.max(1, Math.round(total / 10));
  console.log(
    `memory: ${total} prompts through cap=${options.cap} vs an uncapped store, ` +
      `${options.concurrent} at once, fresh 1 KiB preview Blob per preview event`,
  );
  if (typeof globalThis.gc !== "function") {
    console.log("  (no --expose-gc: numbers are without forced GC and noisy)");
  }
  const rows = [];
  for (const [label, cap] of [
    ["capped", options.cap],
    ["uncapped", Number.MAX_SAFE_INTEGER],
  ]) {
    let store = createStore({ cap });
    const points = [];
    const stream = interleavedStream(
      { ...options, total },
      () => new Blob([new Uint8Array(1024)]),
      (finished) => {
        if (finished % every !== 0) return;
        gc();
        const usage = process.memoryUsage();
        points.push({ finished, size: store.size, heap: usage.heapUsed, external: usage.external });
      },
    );
    gc();
    const baseHeap = process.memoryUsage().heapUsed;
    for (const event of stream) store.dispatch(event);
    rows.push({ label, baseHeap, points });
    store = null;
    gc();
  }
  const [capped, uncapped] = rows;
  console.log(
    "  finished | capped: kept  heapUsed MB  external MB | uncapped: kept  heapUsed MB  external MB",
  );
  for (let i = 0; i < capped.points.length; i += 1) {
    const c = capped.points[i];
    const u = uncapped.points[i];
    const mb = (n) => fmt(n / 1048576, 2).padStart(11);
    console.log(
      `  ${String(c.finished).padStart(8)} | ${String(c.size).padStart(12)} ${mb(c.heap)} ${mb(c.external)} | ` +
        `${String(u.size).padStart(14)} ${mb(u.heap)} ${mb(u.external)}`,
    );
  }
  const atCap = capped.points.find((p) => p.finished >= options.cap * 2) ?? capped.points[0];
  const last = capped.points.at(-1);
  console.log(
    `  capped heap growth from ${atCap.finished} to ${last.finished} finished: ` +
      `${fmt((last.heap - atCap.heap) / 1048576, 2)} MB (target: flat once the cap is reached); ` +
      `uncapped over the same span: ${fmt(
        (uncapped.points.at(-1).heap - uncapped.points[capped.points.indexOf(atCap)].heap) /
          1048576,
        2,
      )} MB`,
  );
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  console.log(
    `# command: node --expose-gc bench/prompt_state_bench.mjs ${process.argv.slice(2).join(" ")}`.trim(),
  );
  console.log(
    `# node ${process.version}, gc exposed: ${typeof globalThis.gc === "function"}, options ${JSON.stringify(options)}`,
  );
  throughput(options);
  memory(options);
}

main();
