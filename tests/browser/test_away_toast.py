"""Finished while away: when a prompt of a workflow tab that is not on screen finishes or
fails, a toast names the workflow and its button brings that tab on screen; the tab on screen
gets none. A person's steps on the pinned and the newest frontend: workflows loaded into tabs,
Ctrl+Enter, a click on a tab, a click on the toast's button; what the page shows is read from
its DOM (the toasts, the tab bar's active tab).

The pinned frontend's stock toast is text only, so the extension draws its own toast there
(`.parallel-runs-toast`); the newest frontend's own toast takes a button (`data-testid=toast`).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from panel_harness import (
    LOAD_WORKFLOW,
    PROMPTS,
    VISIBLE_TAB,
    WAIT,
    open_comfy_page,
    queue_with_keyboard,
    switch_tab,
    ui_workflow,
)

pytestmark = pytest.mark.browser
SHOW = "Show workflow"  # the toast's button (hooks/away_toast.js SHOW_LABEL)
TOASTS = "[data-testid='toast'], .parallel-runs-toast"
SURFACE = {"pinned": ".parallel-runs-toast", "newest": "[data-testid='toast']"}
A, B, F = "Landscape batch", "Portrait study", "Blur test"

# The label of the tab the tab bar shows as active: PrimeVue's checked toggle button on the
# pinned frontend, the selected tab trigger on the newest.
ACTIVE_TAB = """() => {
  const label = document.querySelector(
    '.workflow-tabs .p-togglebutton-checked .workflow-label,'
    + ' .workflow-tabs [role=tab][aria-selected=true] .workflow-label');
  return label ? label.textContent.trim() : null;
}"""

# Let the page paint whatever the last store change asked for (a Vue toast renders on the
# next tick): two animation frames, not a fixed time.
PAINTED = """() => new Promise((done) =>
  requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"""


def failing_workflow(seconds: float) -> dict[str, Any]:
    """Runs `seconds`, then fails: ImageBlur's reflect padding (31) is larger than the 8x8
    image, a runtime error of the node (not a validation error, which would refuse the
    prompt before it runs)."""
    workflow = copy.deepcopy(ui_workflow("fails", seconds))
    empty, _slow, note, _preview = workflow["nodes"]
    empty["widgets_values"][:2] = [8, 8]
    note["type"] = "ImageBlur"
    note["widgets_values"] = [31, 1.0]
    return workflow


@pytest.fixture(scope="module", params=["pinned", "newest"])
def frontend(request, comfy_server, comfy_server_newest) -> tuple[str, str]:
    server = comfy_server if request.param == "pinned" else comfy_server_newest
    return request.param, server.url


class Page:
    """One browser context on the server, its page errors collected."""

    def __init__(self, browser: Any, url: str) -> None:
        self.errors: list[str] = []
        self.context, self.page = open_comfy_page(
            browser, url, before_load=lambda p: p.on("pageerror", self._error)
        )

    def _error(self, error: Any) -> None:
        self.errors.append(str(error))

    def load(self, workflow: dict[str, Any], name: str) -> str:
        """Set-up: `workflow` in a new tab named `name` (on screen); the tab's id."""
        return self.page.evaluate(LOAD_WORKFLOW, [workflow, name])

    def queue(self, tab: str) -> str:
        """Ctrl+Enter on the tab on screen; the new prompt's id once ComfyUI accepted it."""
        known = [p["prompt_id"] for p in self.page.evaluate(PROMPTS)]
        queue_with_keyboard(self.page)
        self.page.wait_for_function(
            """([wf, known]) => window.__parallelRuntime.store.all().some((s) =>
                 s.workflow_id === wf && !known.includes(s.prompt_id) && s.number !== null)""",
            arg=[tab, known],
            timeout=WAIT,
        )
        (new,) = {p["prompt_id"] for p in self.page.evaluate(PROMPTS)} - set(known)
        return new

    def status(self, prompt_id: str) -> str:
        return next(p["status"] for p in self.page.evaluate(PROMPTS) if p["prompt_id"] == prompt_id)

    def wait_status(self, prompt_id: str, status: str) -> None:
        self.page.wait_for_function(
            """([id, status]) => window.__parallelRuntime.store.get(id)?.status === status""",
            arg=[prompt_id, status],
            timeout=WAIT,
        )

    def toasts(self, text: str) -> Any:
        return self.page.locator(TOASTS).filter(has_text=text)

    def close(self) -> None:
        self.context.close()


def test_a_failed_and_a_finished_tab_toast_and_their_buttons_switch_to_them(
    frontend, chromium, artifacts_dir
):
    """Tab B's prompt finishes on screen: no toast. Then tabs F (fails after 1.5 s) and A
    (runs 3 s) are queued with Ctrl+Enter and B is clicked on screen. F's failure toasts,
    naming F and its error; its button brings F on screen (canvas and tab bar). A finishes
    behind it, off screen: its toast's button brings A on screen."""
    which, url = frontend
    client = Page(chromium, url)
    try:
        tab_b = client.load(ui_workflow("on screen", 0.5), B)
        b = client.queue(tab_b)
        client.wait_status(b, "success")
        assert client.page.evaluate(PAINTED)
        assert client.toasts(B).count() == 0  # finished on screen: nothing to tell

        tab_f = client.load(failing_workflow(1.5), F)
        f = client.queue(tab_f)
        tab_a = client.load(ui_workflow("away", 3.0), A)
        a = client.queue(tab_a)
        assert switch_tab(client.page, B, tab_b) == tab_b
        assert client.status(a) in ("queued", "running"), "A finished before B was on screen"

        failed = client.toasts(f"{F} failed: ")
        failed.first.wait_for(timeout=WAIT)
        assert "Padding size" in failed.first.inner_text()
        assert client.page.locator(SURFACE[which]).filter(has_text=F).count() == 1
        assert client.status(f) == "error"
        assert client.page.evaluate(ACTIVE_TAB) == B
        failed.first.get_by_role("button", name=SHOW).click()
        client.page.wait_for_function(f"() => ({VISIBLE_TAB})() === {tab_f!r}", timeout=WAIT)
        client.page.wait_for_function(f"() => ({ACTIVE_TAB})() === {F!r}", timeout=WAIT)
        assert client.toasts(f"{F} failed").count() == 0  # closed by its button

        finished = client.toasts(f"{A} finished")
        finished.first.wait_for(timeout=WAIT)
        assert client.page.evaluate(PAINTED)
        assert finished.count() == 1  # one toast per prompt
        assert client.page.locator(SURFACE[which]).filter(has_text=A).count() == 1
        shot = artifacts_dir / f"finished-while-away-{which}.png"
        client.page.screenshot(path=str(shot))
        finished.first.get_by_role("button", name=SHOW).click()
        client.page.wait_for_function(f"() => ({VISIBLE_TAB})() === {tab_a!r}", timeout=WAIT)
        client.page.wait_for_function(f"() => ({ACTIVE_TAB})() === {A!r}", timeout=WAIT)
        assert client.toasts(f"{A} finished").count() == 0

        assert client.errors == []
    finally:
        client.close()
