// Parallel Runs: learn which workflow tab queued each prompt, and send RunPod-bound prompts to
// the offload route.
//
// Why the fetch and not api.queuePrompt's result: the server may send execution_start before the
// HTTP response arrives, so an id learnt from the response comes too late to scope the first
// events. ComfyUI's POST /prompt accepts a client-chosen `prompt_id`; we add one to the request
// that api.queuePrompt builds (all frontends build it the same way), record the prompt
// (`parallel.queued`) before sending, and read the tab and executor from the queued workflow
// itself (extra_pnginfo.workflow: its `id` and `extra.parallel_runs`), not from whatever tab is on
// screen when the response lands.

/** Comfy.org credentials the frontend adds to extra_data: never forwarded to a remote worker. */
const LOCAL_ONLY_EXTRA = ["auth_token_comfy_org", "api_key_comfy_org"];
export const OFFLOAD_ROUTE = "/parallel/offload/prompt";

function uuid4() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const EXECUTOR_ID = /^(runpod|comfyui|auto)(?::([A-Za-z0-9_.-]{1,64}))?$/;
export const CHOOSE_ROUTE = "/parallel/executors/choose";
const EXECUTOR_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * The executor a workflow chose, from `extra.parallel_runs.executor`: `{kind, name, id}` where
 * id is "local", "runpod" (the server's default endpoint), "runpod:<endpoint>" or
 * "comfyui:<server>", or "auto" (chosen per prompt when it is queued). Reads the older
 * `{executor: "runpod", endpoint_id}` too; anything unknown runs locally.
 */
export function executorChoice(workflow) {
  return parseExecutor(workflow?.extra?.parallel_runs);
}

/** Auto's request from the user's settings: allowed executors ("" = all) and the wait past
 * which RunPod may be used (0 = never). Pure. */
export function autoOptions(allowedText, paidAfter) {
  const allowed = String(allowedText ?? "")
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  const paid = Number(paidAfter);
  return {
    allowed: allowed.length ? allowed : null,
    paid_after: Number.isFinite(paid) && paid > 0 ? Math.min(paid, 86400) : null,
  };
}

/** `{executor, endpoint_id?}` (a workflow's choice, or Auto's answer) as `{kind, name, id}`. */
export function parseExecutor(choice) {
  if (choice?.executor === "local") return { kind: "local", name: null, id: "local" };
  const match = typeof choice?.executor === "string" ? EXECUTOR_ID.exec(choice.executor) : null;
  if (!match) return { kind: "local", name: null, id: "local" };
  let name = match[2] ?? null;
  const older = typeof choice.endpoint_id === "string" ? choice.endpoint_id.trim() : "";
  if (!name && match[1] === "runpod" && EXECUTOR_NAME.test(older)) name = older;
  return { kind: match[1], name, id: name ? `${match[1]}:${name}` : match[1] };
}

/**
 * Pure: how to send one POST /prompt body. Returns {route, body, record} where record is the
 * parallel.queued detail (prompt_id filled in later for offloaded prompts).
 */
export function planQueue(body, fallbackWorkflowId, chosen = null) {
  const workflow = body.extra_data?.extra_pnginfo?.workflow;
  const choice = chosen ?? executorChoice(workflow);
  const record = {
    workflow_id: workflow?.id ? String(workflow.id) : fallbackWorkflowId,
    client_id: body.client_id ?? null,
    node_ids: Object.keys(body.prompt ?? {}),
  };
  if (choice.kind === "local" || choice.kind === "auto") {
    // "auto" here means Auto could not choose: the prompt still runs, on this ComfyUI
    const prompt_id = body.prompt_id ?? uuid4();
    return {
      route: null,
      body: { ...body, prompt_id },
      record: { ...record, prompt_id, executor: "local" },
    };
  }
  const extra = { ...(body.extra_data ?? {}) };
  for (const key of LOCAL_ONLY_EXTRA) delete extra[key];
  const offload = {
    prompt: body.prompt,
    client_id: body.client_id,
    extra_data: extra,
    executor: choice.id,
  };
  return {
    route: OFFLOAD_ROUTE,
    body: offload,
    record: { ...record, executor: choice.id },
  };
}

/** Node class and title per node id of a queued prompt, for naming the node a prompt is on. */
export function nodeNames(prompt) {
  const names = {};
  for (const [id, node] of Object.entries(prompt ?? {})) {
    names[id] = node?._meta?.title ?? node?.class_type ?? id;
  }
  return names;
}

function isQueueRequest(route, options) {
  const path = String(route).split("?")[0];
  return (
    (path === "/prompt" || path === "/api/prompt") &&
    String(options?.method ?? "GET").toUpperCase() === "POST" &&
    typeof options?.body === "string"
  );
}

async function jsonError(response) {
  const text = await response.text();
  try {
    JSON.parse(text);
    return new Response(text, { status: response.status, headers: response.headers });
  } catch {
    const error = {
      type: "offload_unavailable",
      message: `Offload failed: HTTP ${response.status} ${text.slice(0, 200)}`.trim(),
      details: "",
    };
    return Response.json({ error, node_errors: {} }, { status: response.status });
  }
}

/**
 * Wrap api.fetchApi. `announce(detail)` dispatches parallel.queued; `forget(id)` drops a prompt
 * the server refused; `names` (Map) receives node names per prompt id; `autoOptions()` gives
 * Auto's `{allowed, paid_after}` from the user's settings.
 */
export function installQueueHook({ api, visibleWorkflowId, announce, forget, names, autoOptions }) {
  const original = api.fetchApi;

  /** Where Auto runs this prompt: the server's choice, or this ComfyUI when it has none. */
  async function chooseForAuto() {
    try {
      const response = await original.call(api, CHOOSE_ROUTE, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(autoOptions?.() ?? {}),
      });
      if (response.ok) return parseExecutor(await response.json());
    } catch {
      // the server is unreachable: /prompt will say so itself
    }
    return parseExecutor({ executor: "local" });
  }

  async function send(route, options, plan) {
    if (plan.route === null) {
      names.set(plan.record.prompt_id, nodeNames(plan.body.prompt));
      announce(plan.record);
      const response = await original.call(api, route, { ...options, body: JSON.stringify(plan.body) });
      if (!response.ok) forget(plan.record.prompt_id);
      else {
        const number = (await response.clone().json().catch(() => ({}))).number;
        if (typeof number === "number") announce({ ...plan.record, number });
      }
      return response;
    }
    const response = await original.call(api, plan.route, {
      ...options,
      body: JSON.stringify(plan.body),
    });
    if (!response.ok) return jsonError(response);
    const result = await response.clone().json();
    names.set(result.prompt_id, nodeNames(plan.body.prompt));
    announce({ ...plan.record, prompt_id: result.prompt_id, number: result.number });
    return Response.json({ node_errors: {}, ...result }, { status: 200 });
  }

  async function fetchApi(route, options) {
    if (!isQueueRequest(route, options)) return original.call(api, route, options);
    let body;
    try {
      body = JSON.parse(options.body);
    } catch {
      return original.call(api, route, options);
    }
    if (!body || typeof body.prompt !== "object") return original.call(api, route, options);
    const workflow = body.extra_data?.extra_pnginfo?.workflow;
    const auto = executorChoice(workflow).kind === "auto";
    const chosen = auto ? await chooseForAuto() : null;
    return send(route, options, planQueue(body, visibleWorkflowId(), chosen));
  }

  api.fetchApi = fetchApi;
  return () => {
    if (api.fetchApi === fetchApi) api.fetchApi = original;
  };
}
