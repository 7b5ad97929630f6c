// Parallel Runs: the ComfyUI servers prompts can run on, in the panel header: the list (name,
// address, where it was set, whether an auth header is set) and a form to add, change or remove
// one. An auth header is write-only, like the RunPod key: sent once, the input cleared at once,
// never shown back. Servers named in ComfyUI's environment are listed but not editable here.

import { el } from "./dom.js";
import { refusalText } from "./offload_settings.js";

export const SERVERS_ROUTE = "/parallel/executors/comfyui";
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Checks the form before sending (pure): {ok, body?, message?}. */
export function checkServer(name, url, auth) {
  const cleanName = String(name ?? "").trim();
  const cleanUrl = String(url ?? "").trim();
  if (!NAME.test(cleanName)) {
    return { ok: false, message: "A server name is letters, digits, '.', '-' and '_'" };
  }
  if (!/^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(cleanUrl)) {
    return { ok: false, message: "The address is http:// or https://, e.g. http://127.0.0.1:8189" };
  }
  const body = { name: cleanName, url: cleanUrl };
  const header = String(auth ?? "").trim();
  if (header) body.auth = header;
  return { ok: true, body };
}

/** One server's line in the list (pure). */
export function serverText(server) {
  const from = server.source === "env" ? " (from the environment)" : "";
  const auth = server.auth_set ? ", auth header set" : "";
  return `${server.name}: ${server.url}${auth}${from}`;
}

/** createServerSettings({api, onServers}) -> {element, load()}; `onServers(names)` after each
 * answer (for the "Run on" choice). */
export function createServerSettings({ api, onServers = () => {} }) {
  const list = el("ul", { class: "parallel-runs-servers-list" });
  const input = (cls, placeholder, label, extra = {}) =>
    el("input", { class: cls, placeholder, spellcheck: "false", "aria-label": label, ...extra });
  const name = input("parallel-runs-server-name", "name, e.g. gpu2", "Server name");
  const url = input("parallel-runs-server-url", "http://127.0.0.1:8189", "Server address");
  const auth = input("parallel-runs-server-auth", "auth header (optional)", "Authorization header", {
    type: "password",
    autocomplete: "new-password",
  });
  const save = el("button", { type: "button", class: "parallel-runs-server-save" }, ["Add"]);
  const message = el("div", { class: "parallel-runs-servers-message", role: "status" });
  const summary = el("summary", { text: "ComfyUI servers" });
  const form = el("div", { class: "parallel-runs-servers-form" }, [name, url, auth, save]);
  const root = el("details", { class: "parallel-runs-servers" }, [summary, list, form, message]);

  function say(text, kind) {
    message.textContent = text ?? "";
    message.dataset.kind = kind ?? "";
  }

  function show(servers) {
    list.replaceChildren(
      ...servers.map((server) => {
        const item = el("li", { "data-server": server.name, text: serverText(server) });
        if (server.source !== "env") {
          const remove = el("button", { type: "button", class: "parallel-runs-server-remove" }, [
            "Remove",
          ]);
          remove.addEventListener("click", () => post({ name: server.name, url: null }, "Removed"));
          item.append(" ", remove);
        }
        return item;
      }),
    );
    summary.textContent = `ComfyUI servers (${servers.length})`;
    onServers(servers.map((server) => server.name));
  }

  async function request(options) {
    try {
      const response = await api.fetchApi(SERVERS_ROUTE, options);
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        say(refusalText(response.status, body), "error");
        return false;
      }
      show(body.servers ?? []);
      return true;
    } catch (error) {
      say(`Cannot reach the server: ${error}`, "error");
      return false;
    }
  }

  async function post(body, done) {
    const options = {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    if (await request(options)) say(done, "ok");
  }

  async function onSave() {
    const checked = checkServer(name.value, url.value, auth.value);
    auth.value = ""; // the header lives only in this call's request body
    if (!checked.ok) {
      say(checked.message, "error");
      return;
    }
    await post(checked.body, `Saved: ${checked.body.name}`);
    name.value = url.value = "";
  }

  save.addEventListener("click", onSave);
  const load = () => request(undefined);
  load();
  return { element: root, load };
}
