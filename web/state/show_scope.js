// Parallel Runs: whose prompts this browser tab shows ("Show prompts from" setting). The panel,
// the title, the favicon and the stock queue list all read the same scope, so they always
// describe the same prompts. Pure: no DOM, no `app`/`api` import.

/** The setting's values: this browser tab only (default), or every client of the server. */
export const SHOW_FROM = Object.freeze({ TAB: "tab", ALL: "all" });

/** A known setting value, anything else falls back to this tab only. */
export function normaliseFrom(value) {
  return value === SHOW_FROM.ALL ? SHOW_FROM.ALL : SHOW_FROM.TAB;
}

/**
 * Who queued a prompt, seen from this tab: "tab" (this tab, or not said: events ComfyUI sent
 * here), "client" (another browser tab or app, by its client id), "script" (listed by the
 * server with no client id at all, e.g. a script's POST /prompt).
 */
export function originOf(prompt, clientId, { listed = false } = {}) {
  const owner = prompt?.client_id ?? null;
  if (owner === null) return listed ? "script" : "tab";
  return clientId && owner !== clientId ? "client" : "tab";
}

/** Short words for a prompt that is not this tab's, or "" for this tab's own. */
export function originLabel(origin) {
  if (origin === "client") return "another client";
  if (origin === "script") return "script";
  return "";
}

/** True when a job summary from GET /parallel/jobs belongs to the scope. */
export function jobInScope(job, { from, clientId }) {
  if (normaliseFrom(from) === SHOW_FROM.ALL) return true;
  return !clientId || !job?.client_id || job.client_id === clientId;
}

/**
 * createShowScope({from, clientId}) -> a small observable value: `from` ("tab" | "all"),
 * `shown(prompts)` (the prompts to show), `origin(prompt)`, `set(from)`, `subscribe(fn)`.
 * `clientId` is a function: the websocket may hand the tab a new id after a reconnect.
 */
export function createShowScope({ from = SHOW_FROM.TAB, clientId = () => null } = {}) {
  let current = normaliseFrom(from);
  const listed = new Set(); // prompt ids the server listed with no client id (scripts)
  const listeners = new Set();
  return {
    get from() {
      return current;
    },
    /** Change the setting; subscribers hear of it only when it changed. */
    set(value) {
      const next = normaliseFrom(value);
      if (next === current) return false;
      current = next;
      for (const fn of listeners) fn(current);
      return true;
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    /** Remember the server's listing, so prompts it lists without a client id read "script". */
    noteListed(jobs) {
      for (const job of jobs ?? []) if (job?.prompt_id && !job.client_id) listed.add(job.prompt_id);
    },
    origin(prompt) {
      return originOf(prompt, clientId(), { listed: listed.has(prompt?.prompt_id) });
    },
    /** The prompts this tab shows, in the order given. */
    shown(prompts) {
      if (current === SHOW_FROM.ALL) return prompts;
      return prompts.filter((prompt) => this.origin(prompt) === "tab");
    },
  };
}
