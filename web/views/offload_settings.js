// Parallel Runs: the RunPod settings form (API key and default endpoint) in the panel header.
//
// The key is write-only: the form reads GET /parallel/offload/config (whether a key is set and
// its last four characters, never the key), and "Save key" POSTs the typed key once and clears
// the input at once, so the key is never kept in JS state, localStorage, the workflow or the
// DOM. The server decides what is allowed; its refusals (409 key from the environment or offload
// refused, 400 validation) are shown next to the form as it words them.

import { el } from "./dom.js";

export const CONFIG_ROUTE = "/parallel/offload/config";
export const ENDPOINT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const KEY_PATTERN = /^[\x21-\x7e]{1,512}$/;

/** One line saying whether a key is set, where from and how it ends (pure). */
export function keyStatusText(view) {
  if (!view) return "RunPod settings unavailable";
  if (!view.api_key_set) return "No API key set";
  const ends = view.api_key_last4 ? ` (ends in ${view.api_key_last4})` : "";
  const from =
    view.api_key_source === "env"
      ? ", from RUNPOD_API_KEY in ComfyUI's environment"
      : view.api_key_source === "file"
        ? ", saved on the ComfyUI server"
        : "";
  return `API key set${ends}${from}`;
}

/** The summary line of the collapsed section (pure). */
export function summaryText(view) {
  if (!view) return "RunPod: settings unavailable";
  const key = view.api_key_set ? `key …${view.api_key_last4 ?? "set"}` : "no key";
  const endpoint = view.endpoint_id ? `endpoint ${view.endpoint_id}` : "no default endpoint";
  return `RunPod: ${key}, ${endpoint}`;
}

/** Checks the typed key before sending it (pure): {ok, value?, message?}. */
export function checkKey(text) {
  const value = String(text ?? "").trim();
  if (!value) return { ok: false, message: "Type the API key first" };
  if (!KEY_PATTERN.test(value)) {
    return { ok: false, message: "An API key is at most 512 printable characters, no spaces" };
  }
  return { ok: true, value };
}

/** Checks a default endpoint id (pure); "" clears it. {ok, value?, message?}. */
export function checkEndpoint(text) {
  const value = String(text ?? "").trim();
  if (value === "" || ENDPOINT_ID_PATTERN.test(value)) return { ok: true, value };
  return {
    ok: false,
    message: "An endpoint id is letters, digits, '-' and '_' (at most 64), as RunPod shows it",
  };
}

/** What to show for a refused request (pure): the server's own message when it sent one. */
export function refusalText(status, body) {
  const message = body?.error?.message;
  if (typeof message === "string" && message) return message;
  if (status === 409) return "The server refused the change (HTTP 409)";
  if (status === 400) return "The server rejected the value (HTTP 400)";
  return `The request failed (HTTP ${status})`;
}

async function readJson(response) {
  return response.json().catch(() => ({}));
}

/**
 * createOffloadSettings({api, onView}) -> {element, load(), view}. `onView(view)` is called
 * with every config view the server answers (for the endpoint placeholder elsewhere).
 */
export function createOffloadSettings({ api, onView = () => {} }) {
  let view = null;
  const summary = el("summary", { class: "parallel-runs-runpod-summary" });
  const status = el("div", { class: "parallel-runs-runpod-key-status" });
  const keyInput = el("input", {
    type: "password",
    class: "parallel-runs-runpod-key",
    placeholder: "RunPod API key",
    autocomplete: "new-password",
    spellcheck: "false",
    "aria-label": "RunPod API key",
  });
  const saveKey = el("button", { type: "button", class: "parallel-runs-runpod-save-key" }, [
    "Save key",
  ]);
  const removeKey = el("button", { type: "button", class: "parallel-runs-runpod-remove-key" }, [
    "Remove",
  ]);
  removeKey.title = "Delete the key saved on the server";
  const endpointInput = el("input", {
    class: "parallel-runs-runpod-endpoint",
    placeholder: "endpoint id",
    spellcheck: "false",
    "aria-label": "Default RunPod endpoint id",
  });
  const saveEndpoint = el(
    "button",
    { type: "button", class: "parallel-runs-runpod-save-endpoint" },
    ["Save"],
  );
  const message = el("div", { class: "parallel-runs-runpod-message", role: "status" });
  const refused = el("div", { class: "parallel-runs-runpod-refused" });
  const root = el("details", { class: "parallel-runs-runpod" }, [
    summary,
    status,
    el("label", { class: "parallel-runs-runpod-line" }, [el("span", { text: "Key" }), keyInput]),
    el("div", { class: "parallel-runs-runpod-buttons" }, [saveKey, removeKey]),
    el("label", { class: "parallel-runs-runpod-line" }, [
      el("span", { text: "Default endpoint" }),
      endpointInput,
      saveEndpoint,
    ]),
    message,
    refused,
  ]);

  function say(text, kind) {
    message.textContent = text ?? "";
    message.dataset.kind = kind ?? "";
  }

  function show(next) {
    view = next;
    summary.textContent = summaryText(view);
    status.textContent = keyStatusText(view);
    root.dataset.keySet = view?.api_key_set ? "true" : "false";
    removeKey.hidden = view?.api_key_source !== "file";
    if (document.activeElement !== endpointInput) endpointInput.value = view?.endpoint_id ?? "";
    refused.textContent = view && !view.allowed ? view.allowed_detail : "";
    refused.hidden = !refused.textContent;
    if (view && !view.api_key_set) root.open = true; // nothing works without a key: ask for it
    onView(view);
  }

  async function load() {
    try {
      const response = await api.fetchApi(CONFIG_ROUTE);
      if (!response.ok) {
        say(refusalText(response.status, await readJson(response)), "error");
        return null;
      }
      show(await readJson(response));
    } catch (error) {
      say(`Cannot reach the server: ${error}`, "error");
    }
    return view;
  }

  async function post(body, done) {
    let response;
    try {
      response = await api.fetchApi(CONFIG_ROUTE, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (error) {
      say(`Cannot reach the server: ${error}`, "error");
      return;
    }
    const answer = await readJson(response);
    if (!response.ok) {
      say(refusalText(response.status, answer), "error");
      return;
    }
    show(answer);
    say(done, "ok");
  }

  async function onSaveKey() {
    // Read and clear in one go: the key lives only in this call's request body.
    const checked = checkKey(keyInput.value);
    keyInput.value = "";
    if (!checked.ok) {
      say(checked.message, "error");
      return;
    }
    saveKey.disabled = true;
    try {
      await post({ api_key: checked.value }, "Key saved on the server");
    } finally {
      saveKey.disabled = false;
    }
  }

  async function onSaveEndpoint() {
    const checked = checkEndpoint(endpointInput.value);
    if (!checked.ok) {
      say(checked.message, "error");
      return;
    }
    await post(
      { endpoint_id: checked.value },
      checked.value ? `Default endpoint: ${checked.value}` : "Default endpoint cleared",
    );
  }

  saveKey.addEventListener("click", onSaveKey);
  keyInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") onSaveKey();
  });
  removeKey.addEventListener("click", () => post({ api_key: "" }, "Key removed"));
  saveEndpoint.addEventListener("click", onSaveEndpoint);
  endpointInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") onSaveEndpoint();
  });
  summary.textContent = "RunPod settings";
  removeKey.hidden = true;
  refused.hidden = true;
  load();
  return {
    element: root,
    load,
    get view() {
      return view;
    },
  };
}
