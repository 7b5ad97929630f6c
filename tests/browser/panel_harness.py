"""Helpers for driving the Parallel Runs panel in a real ComfyUI page (Playwright, sync)."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable
from typing import Any

from http_json import post_json
from playwright.sync_api import TimeoutError as PlaywrightTimeout

WAIT = 60_000  # ms: ComfyUI's page loads slowly on a busy 2-core machine

# Before any page script: keep the runtime the extension announces (tests only).
CAPTURE_RUNTIME = """window.addEventListener('parallel.ready',
  (e) => { window.__parallelRuntime = e.detail.runtime; });"""

# Record which canvas-painting events reached the frontend's own listeners, and which tab was
# on screen when they did (a listener added after the stock ones sees what they see).
WATCH_STOCK_LISTENERS = """async () => {
  const { api } = await import('/scripts/api.js');
  const rt = window.__parallelRuntime;
  window.__parallelPainted = [];
  const types = ['progress_state', 'executed', 'b_preview_with_metadata', 'progress',
    'progress_text'];
  for (const type of types) {
    api.addEventListener(type, (e) => window.__parallelPainted.push({
      type,
      prompt_id: e.detail?.prompt_id ?? e.detail?.promptId ?? e.detail?.jobId ?? null,
      visible: rt.tabs.visibleId(),
      nodes: type === 'progress_state' ? Object.keys(e.detail?.nodes ?? {}).length : null,
      text: type === 'progress_text' ? e.detail?.text : null,
    }));
  }
  return true;
}"""

OPEN_PANEL = """async () => {
  const { app } = await import('/scripts/app.js');
  if (!document.querySelector('.parallel-runs-panel')) {
    await app.extensionManager.command.execute('Workspace.ToggleSidebarTab.parallel-runs');
  }
  return !!document.querySelector('.parallel-runs-panel');
}"""

# Set-up: open `workflow` (UI format) in a new workflow tab named `name`, as loading a file
# does; returns the tab's workflow id.
LOAD_WORKFLOW = """async ([workflow, name]) => {
  const { app } = await import('/scripts/app.js');
  await app.loadGraphData(workflow, true, true, name);
  return window.__parallelRuntime.tabs.visibleId();
}"""

VISIBLE_TAB = "() => window.__parallelRuntime.tabs.visibleId()"


TYPING = """() => { const e = document.activeElement;
  return !!e && (e.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.tagName)); }"""


def queue_with_keyboard(page: Any) -> None:
    """What a person does: press Ctrl+Enter, first clicking an empty spot of the canvas
    (above the test workflows' nodes) if a text field has the keyboard. Not every time: two
    clicks there in quick succession are a double click, which opens the node search."""
    if page.evaluate(TYPING):
        page.locator("#graph-canvas").click(position={"x": 700, "y": 200})
    page.keyboard.press("Control+Enter")


def press_run(page: Any) -> None:
    """Press the frontend's Run (queue) button, on both frontends."""
    page.get_by_role("button", name="Run", exact=True).first.click()


def open_and_queue(page: Any, workflow: dict[str, Any], name: str) -> str:
    """Open `workflow` in a tab of its own and press Run; its workflow id."""
    tab = page.evaluate(LOAD_WORKFLOW, [workflow, name])
    press_run(page)
    return tab


def queue_new_prompt(page: Any, workflow: dict[str, Any], name: str) -> str:
    """`open_and_queue`, then the id of the one prompt that queueing added to the page."""
    ids = "() => window.__parallelRuntime.store.all().map((s) => s.prompt_id)"
    before = set(page.evaluate(ids))
    open_and_queue(page, workflow, name)
    page.wait_for_function(f"(n) => ({ids})().length > n", arg=len(before), timeout=WAIT)
    (added,) = set(page.evaluate(ids)) - before
    return added


def switch_tab(page: Any, name: str, expected: str) -> str:
    """Click the workflow tab labelled `name` in the top bar; the id of the tab then on
    screen, once it is `expected` (or when the wait runs out)."""
    page.locator(".workflow-tab .workflow-label").filter(has_text=name).first.click()
    page.wait_for_function(f"() => ({VISIBLE_TAB})() === {expected!r}", timeout=WAIT)
    return page.evaluate(VISIBLE_TAB)


# The store's view of every prompt (plain JSON).
PROMPTS = """() => window.__parallelRuntime.store.all().map((s) => ({
  prompt_id: s.prompt_id, status: s.status, workflow_id: s.workflow_id, executor: s.executor,
  outputs: s.outputs, progress_text: s.progress_text, error: s.error,
}))"""

# The panel's DOM, one entry per row.
PANEL_ROWS = """() => [...document.querySelectorAll('.parallel-runs-row')].map((row) => ({
  prompt_id: row.dataset.promptId,
  status: row.dataset.status,
  workflow_id: row.dataset.workflowId,
  executor: row.dataset.executor,
  fraction: Number(row.querySelector('.parallel-runs-bar').dataset.fraction),
  node: row.querySelector('.parallel-runs-node')?.textContent ?? null,
  text: row.querySelector('.parallel-runs-text')?.textContent ?? null,
  thumbs: [...row.querySelectorAll('img.parallel-runs-thumb:not(.parallel-runs-preview)')]
    .map((img) => img.dataset.filename),
  stop: !!row.querySelector('.parallel-runs-stop'),
}))"""

# What the visible canvas shows: outputs per node and node progress-text widgets.
CANVAS = """async () => {
  const { app } = await import('/scripts/app.js');
  const graph = app.rootGraph ?? app.graph;
  const texts = {};
  for (const node of graph.nodes) {
    const w = node.widgets?.find((w) => w.name === '$$node-text-preview');
    if (w) texts[node.id] = w.value;
  }
  const images = {};
  for (const [id, out] of Object.entries(app.nodeOutputs ?? {})) {
    images[id] = (out?.images ?? []).map((i) => i.filename);
  }
  return { visible: window.__parallelRuntime.tabs.visibleId(), texts, images };
}"""

CLICK_STOP = """(id) => {
  const row = document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]`);
  row.querySelector('.parallel-runs-stop').click();
  return true;
}"""


ROW_REACHED = """([id, status, above]) => {
  const row = document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]`);
  return row?.dataset.status === status && (above === null
    || Number(row.querySelector('.parallel-runs-bar').dataset.fraction) > above);
}"""


def wait_row(page: Any, prompt_id: str, status: str, above: float | None = None) -> None:
    """Wait until the panel's row of `prompt_id` reads `status` (and its bar is past `above`)."""
    page.wait_for_function(ROW_REACHED, arg=[prompt_id, status, above], timeout=WAIT)


def ui_workflow(note: str, seconds: float, steps: int = 6) -> dict[str, Any]:
    """A UI-format workflow: EmptyImage -> Slow Passthrough -> Progress Note -> Preview Image."""
    color = random.randrange(0xFFFFFF)

    def node(nid, kind, inputs, outputs, widgets, x):
        return {
            "id": nid,
            "type": kind,
            "pos": [x, 80],
            "size": [260, 120],
            "flags": {},
            "order": nid - 1,
            "mode": 0,
            "inputs": inputs,
            "outputs": outputs,
            "properties": {},
            "widgets_values": widgets,
        }

    def out(link):
        return [{"name": "IMAGE", "type": "IMAGE", "links": [link]}]

    def inp(name, link):
        return [{"name": name, "type": "IMAGE", "link": link}]

    return {
        "id": str(uuid.uuid4()),
        "revision": 0,
        "last_node_id": 4,
        "last_link_id": 3,
        "nodes": [
            node(1, "EmptyImage", [], out(1), [64, 64, 1, color], 20),
            node(2, "ParallelRunsSlowPassthrough", inp("image", 1), out(2), [seconds, steps], 320),
            node(3, "ParallelRunsProgressNote", inp("image", 2), out(3), [note], 620),
            node(4, "PreviewImage", inp("images", 3), [], [], 920),
        ],
        "links": [
            [1, 1, 0, 2, 0, "IMAGE"],
            [2, 2, 0, 3, 0, "IMAGE"],
            [3, 3, 0, 4, 0, "IMAGE"],
        ],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


SOCKET_READY = """async () => { const { api } = await import('/scripts/api.js');
  return api.socket && api.socket.readyState === 1 && !!api.clientId; }"""


def open_comfy_page(
    browser: Any,
    url: str,
    *init_scripts: str,
    before_load: Callable[[Any], None] | None = None,
) -> tuple[Any, Any]:
    """A fresh browser context (one ComfyUI client) on `url`, returned as (context, page) once
    the extension has announced its runtime and the websocket is up. The first-run templates
    dialog, which would cover the canvas, is marked as seen; `init_scripts` run before any page
    script; `before_load(page)` can attach listeners before navigation."""
    context, page = _new_client(browser, url, init_scripts, before_load)
    page.goto(url, wait_until="domcontentloaded")
    _wait_ready(page)
    return context, page


def open_comfy_pages(browser: Any, url: str, count: int) -> list[tuple[Any, Any]]:
    """`count` clients as `open_comfy_page` opens one, whose pages load side by side (each
    context has its own renderer), not one after the other."""
    clients = [_new_client(browser, url, (), None) for _ in range(count)]
    for _context, page in clients:
        page.goto(url, wait_until="commit")
    for _context, page in clients:
        _wait_ready(page)
    return clients


def _new_client(
    browser: Any, url: str, init_scripts: tuple[str, ...], before_load: Callable[[Any], None] | None
) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    for script in (CAPTURE_RUNTIME, *init_scripts):
        context.add_init_script(script)
    context.request.post(f"{url}/settings/Comfy.TutorialCompleted", data="true")
    page = context.new_page()
    if before_load is not None:
        before_load(page)
    return context, page


def _wait_ready(page: Any) -> None:
    page.wait_for_function("() => window.__parallelRuntime !== undefined", timeout=WAIT)
    page.wait_for_function(SOCKET_READY, timeout=WAIT)


def open_settings(page: Any) -> Any:
    """Open the Settings dialog as a person does (Ctrl+,) and return its search box. A key
    press can be lost while the page is busy, or land in a field that keeps it: then close
    what is open, click the canvas and press again, as a person would."""
    search = page.get_by_placeholder("Search Settings")
    page.keyboard.press("Control+,")
    try:
        search.wait_for(timeout=10_000)
        return search
    except PlaywrightTimeout:
        pass
    page.keyboard.press("Escape")
    with contextlib.suppress(PlaywrightTimeout):  # a popup over the canvas: the key still goes
        page.locator("#graph-canvas").click(position={"x": 700, "y": 200}, timeout=5_000)
    page.keyboard.press("Control+,")
    search.wait_for(timeout=WAIT)
    return search


def choose_setting(page: Any, label: str, option: str) -> None:
    """What a person does to change a setting, on both frontends: open Settings, search for
    the setting's label, pick `option` in its dropdown, close the dialog."""
    search = open_settings(page)
    search.fill(label)
    page.locator(".setting-item", has_text=label).get_by_role("combobox").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    search.wait_for(state="detached", timeout=WAIT)


def tidy(url: str, prompt_ids: list[str], settings: dict[str, Any] | None = None) -> None:
    """Leave a shared server as found: `settings` back to these values (settings are kept per
    user on the server) and none of a test's prompts still waiting or running."""
    for setting, value in (settings or {}).items():
        post_json(f"{url}/settings/{setting}", value)
    post_json(f"{url}/queue", {"delete": prompt_ids})
    for prompt_id in prompt_ids:
        post_json(f"{url}/interrupt", {"prompt_id": prompt_id})
