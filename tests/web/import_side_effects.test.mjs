// ComfyUI loads every .js file under web/ as an extension, so every module but the entry
// (web/parallel_runs.js) must do nothing when imported: no DOM, no timers, no listeners, no
// requests, no globals. This imports each one with those entry points watched.
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "web");
const ENTRY = join(WEB, "parallel_runs.js");
const WATCHED_GLOBALS = [
  "document",
  "window",
  "app",
  "localStorage",
  "sessionStorage",
  "navigator",
];
const WATCHED_CALLS = [
  "setTimeout",
  "setInterval",
  "queueMicrotask",
  "requestAnimationFrame",
  "fetch",
  "addEventListener",
  "dispatchEvent",
];

function modulesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return modulesUnder(path);
    return entry.name.endsWith(".js") && path !== ENTRY ? [path] : [];
  });
}

/** True when the current call comes from a module under web/ (not from node or the runner). */
function fromWeb() {
  return (new Error().stack ?? "").includes(pathToFileURL(WEB).href);
}

/** Watch globals and calls a module could use on import; returns what it saw and an undo. */
function watch() {
  const seen = [];
  const undo = [];
  for (const name of [...WATCHED_GLOBALS, ...WATCHED_CALLS]) {
    const had = Object.getOwnPropertyDescriptor(globalThis, name);
    const original = globalThis[name];
    const isCall = WATCHED_CALLS.includes(name);
    const stand = (...args) => {
      if (fromWeb()) seen.push(`${name}()`);
      return typeof original === "function" ? original.apply(globalThis, args) : undefined;
    };
    Object.defineProperty(globalThis, name, {
      configurable: true,
      get() {
        if (!isCall && fromWeb()) seen.push(name);
        return isCall ? stand : original;
      },
    });
    undo.push(() => {
      if (had) Object.defineProperty(globalThis, name, had);
      else delete globalThis[name];
    });
  }
  return { seen, restore: () => undo.forEach((fn) => fn()) };
}

test("modules under web/ other than the entry have no import-time side effects", async () => {
  const modules = modulesUnder(WEB);
  assert.ok(modules.some((path) => path.endsWith(join("state", "prompt_state.js"))));
  const globalsBefore = new Set(Object.getOwnPropertyNames(globalThis));
  for (const path of modules) {
    const { seen, restore } = watch();
    try {
      await import(pathToFileURL(path).href);
    } finally {
      restore();
    }
    assert.deepEqual(seen, [], `importing ${relative(WEB, path)} touched these`);
  }
  const added = Object.getOwnPropertyNames(globalThis).filter((name) => !globalsBefore.has(name));
  assert.deepEqual(added, [], "globals added on import");
});
