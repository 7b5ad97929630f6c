// Parallel Runs: the frontend's own indicators outside the panel (the browser tab's title and
// favicon, the top bar's active count and progress) describe the same prompts as the panel:
// the ones the "Show prompts from" scope shows; the title and favicon all of them, the top
// bar those of the workflow tab on screen. One install for the entry.

import { installFavicon } from "./favicon.js";
import { appWorkflowTitle, installTitle } from "./title.js";
import { installTopBar } from "./top_bar.js";

/**
 * installIndicators({app, doc, store, scope, tabs, aggregate}) -> {refresh, uninstall}.
 * `aggregate` is aggregateProgress; call refresh() when the tab on screen changes.
 */
export function installIndicators({ app, doc, store, scope, tabs, aggregate }) {
  const parts = [
    installTitle({ doc, store, scope, aggregate, workflowTitle: () => appWorkflowTitle(app) }),
    installFavicon({ doc, store, scope, aggregate }),
    installTopBar({ doc, store, scope, tabs, aggregate }),
  ];
  return {
    refresh: () => parts.forEach((part) => part.refresh()),
    uninstall: () => parts.forEach((part) => part.uninstall()),
  };
}
