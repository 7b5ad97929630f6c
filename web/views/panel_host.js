// Parallel Runs: where the panel lives: a sidebar tab on frontends that have them (1.x),
// a floating box otherwise. The panel is built when shown and torn down when hidden.

export const SIDEBAR_TAB_ID = "parallel-runs";

/** createPanelHost({app, doc, build}) -> {setEnabled(on)}; build() returns a panel. */
export function createPanelHost({ app, doc, build }) {
  const manager = app.extensionManager;
  const sidebar = typeof manager?.registerSidebarTab === "function";
  let registered = false;
  let floating = null;
  let mounted = null;

  const unmount = () => {
    mounted?.destroy();
    mounted = null;
  };
  const mountInto = (container) => {
    unmount();
    mounted = build();
    container.append(mounted.element);
  };

  function enableSidebar() {
    manager.registerSidebarTab({
      id: SIDEBAR_TAB_ID,
      icon: "pi pi-list-check",
      title: "Parallel Runs",
      tooltip: "Parallel Runs: every prompt in flight",
      type: "custom",
      render: (container) => mountInto(container),
      destroy: unmount,
    });
    registered = true;
  }

  function enableFloating() {
    floating = doc.createElement("div");
    floating.className = "parallel-runs-floating";
    doc.body.append(floating);
    mountInto(floating);
  }

  function setEnabled(on) {
    if (on && !registered && !floating) {
      if (sidebar) enableSidebar();
      else enableFloating();
    } else if (!on) {
      if (registered) {
        manager.unregisterSidebarTab?.(SIDEBAR_TAB_ID);
        registered = false;
      }
      unmount();
      floating?.remove();
      floating = null;
    }
  }

  return { setEnabled, get mounted() { return mounted; } };
}
