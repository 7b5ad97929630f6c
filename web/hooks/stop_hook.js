// Parallel Runs: the frontend's own Stop acts on the workflow tab on screen, and Stop all.
//
// Both frontends (pinned 1.32 and newest 1.58) send the actionbar's Stop button ("Cancel
// current run") and its keybinding (Ctrl+Alt+Enter) through one command, `Comfy.Interrupt`,
// whose stock function is `api.interrupt(<the one active prompt>)` plus a toast: it stops
// whichever prompt the frontend last saw start, whatever tab queued it, and never a prompt on
// another executor. We swap that command's function for ours; `api.interrupt` itself is left
// alone, so the queue lists' per-prompt Cancel (which pass their own prompt id) keep working.
// Which prompts to stop and how is decided in state/stop_plan.js; stopPrompt stops each one.

import { describeStop, planStop } from "../state/stop_plan.js";

export const INTERRUPT_COMMAND = "Comfy.Interrupt";
export const STOP_ALL_COMMAND = "ParallelRuns.StopAll";

/**
 * createStops({store, tabs, clientId, stop, notify}) -> {stopVisible, stopAll}.
 * `stop(prompt)` stops one prompt ({ok, message}); `notify({severity, summary, detail})` tells
 * the user. Each returns the plan it carried out.
 */
export function createStops({ store, tabs, clientId, stop, notify }) {
  async function carryOut(plan, scope) {
    if (plan.length === 0) {
      notify(describeStop(plan, scope));
      return plan;
    }
    const results = [];
    for (const step of plan) {
      // one at a time, in the plan's order: waiting prompts leave the queue first
      results.push(await stop(step.prompt).catch((error) => ({ ok: false, message: String(error) })));
    }
    notify(describeStop(plan, scope, results));
    return plan;
  }
  return {
    stopVisible: () =>
      carryOut(planStop(store.all(), { workflowId: tabs.visibleId(), clientId: clientId() }), "tab"),
    stopAll: () => carryOut(planStop(store.all(), { clientId: clientId() }), "all"),
  };
}

/** A toast through the frontend's toast API when it has one, else a console line. */
export function toaster(app, log = console) {
  return ({ severity, summary, detail }) => {
    const toast = app.extensionManager?.toast;
    if (typeof toast?.add === "function") {
      toast.add({ severity, summary, detail, life: 4000 });
    } else {
      log.info(`[parallel-runs] ${summary}: ${detail}`);
    }
  };
}

/**
 * Make the frontend's Comfy.Interrupt command run `stopVisible` instead. Returns an undo
 * function, or null (with one console line) when the frontend has no such command: then its
 * Stop keeps the stock behaviour.
 */
export function installStopHook({ app, stopVisible, log = console }) {
  const commands = app.extensionManager?.command?.commands;
  const command = Array.isArray(commands)
    ? commands.find((candidate) => candidate?.id === INTERRUPT_COMMAND)
    : null;
  if (!command || typeof command.function !== "function") {
    log.info(
      `[parallel-runs] the frontend has no ${INTERRUPT_COMMAND} command to hook: its Stop stops` +
        " the one prompt it thinks active, as stock",
    );
    return null;
  }
  const stock = command.function;
  const ours = async () => {
    await stopVisible();
  };
  command.function = ours;
  return () => {
    if (command.function === ours) command.function = stock;
  };
}
