"""The frontend's own Stop (the actionbar's "Cancel current run" button and Ctrl+Alt+Enter)
stops the prompts of the workflow tab on screen, wherever they run, and nothing else; the
panel's Stop all stops every prompt in flight. A person's steps on the pinned and the newest
frontend: load workflows into tabs, Ctrl+Enter, click tabs and buttons, press keys.

ComfyUI A is the session server of that frontend; the other session server is named
"other" in A's settings (as a script would), so a prompt can run on another ComfyUI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from http_json import get_json
from panel_harness import (
    LOAD_WORKFLOW,
    OPEN_PANEL,
    PANEL_ROWS,
    WAIT,
    open_comfy_page,
    press_run,
    queue_with_keyboard,
    switch_tab,
    ui_workflow,
    wait_row,
)

pytestmark = pytest.mark.browser
STOP_BUTTON = "Cancel current run"  # the actionbar's Stop: its aria-label on both frontends
LONG = 30.0  # seconds a prompt would run; each test stops its prompts long before
STOP_ALL = "ParallelRuns.StopAll"
COMMAND_IDS = """async () => { const { app } = await import('/scripts/app.js');
  return app.extensionManager.command.commands.map((c) => c.id); }"""
PROMPT_IDS = "window.__parallelRuntime.store.all().map((s) => s.prompt_id)"


class Client:
    """One browser context on A with the panel open."""

    def __init__(self, browser, url: str) -> None:
        self.url = url
        self.errors: list[str] = []
        self.context, self.page = open_comfy_page(
            browser, url, before_load=lambda p: p.on("pageerror", self._error)
        )
        assert self.page.evaluate(OPEN_PANEL)

    def _error(self, error: Any) -> None:
        self.errors.append(str(error))

    def open_tab(self, name: str, executor: str = "local") -> str:
        """Set-up: a workflow in a new tab, run on `executor` (chosen in the panel header)."""
        tab = self.page.evaluate(LOAD_WORKFLOW, [ui_workflow(f"note {name}", LONG, 30), name])
        if executor != "local":
            self.page.select_option(".parallel-runs-executor", executor)
        return tab

    def queue(self, tab: str, press: Callable[[Any], None] = queue_with_keyboard) -> str:
        """Queue the visible tab (Ctrl+Enter, or `press`); the id of the prompt it added, once
        the server that runs it has accepted it (a local prompt has its queue number)."""
        known = self.page.evaluate(f"() => {PROMPT_IDS}")
        press(self.page)
        self.page.wait_for_function(
            """([wf, known]) => window.__parallelRuntime.store.all().some((s) =>
                 s.workflow_id === wf && !known.includes(s.prompt_id)
                 && (s.executor !== 'local' || s.number !== null))""",
            arg=[tab, known],
            timeout=WAIT,
        )
        (new,) = set(self.page.evaluate(f"() => {PROMPT_IDS}")) - set(known)
        return new

    def row(self, prompt_id: str) -> dict[str, Any]:
        return next(r for r in self.page.evaluate(PANEL_ROWS) if r["prompt_id"] == prompt_id)

    def wait_row(self, prompt_id: str, status: str, above: float | None = None) -> float:
        """Wait until the prompt's row has `status` (and a bar past `above`); its fraction."""
        wait_row(self.page, prompt_id, status, above)
        return self.row(prompt_id)["fraction"]

    def press_stop(self) -> None:
        """The actionbar's Stop button."""
        self.page.get_by_role("button", name=STOP_BUTTON).first.click()

    def press_stop_keys(self) -> None:
        """The Stop keybinding, where the last click left the focus (the canvas, clicked to
        queue: a second click there would be a double click, which opens the node search)."""
        self.page.keyboard.press("Control+Alt+Enter")

    def local_queue(self) -> dict[str, list[str]]:
        """A's own queue: the ids running and waiting."""
        queue = get_json(f"{self.url}/queue")
        return {key: [item[1] for item in queue[key]] for key in ("queue_running", "queue_pending")}

    def close(self) -> None:
        self.context.close()


def test_stop_on_a_tab_stops_its_prompt_on_another_server_only(
    paired_server, chromium, artifacts_dir
):
    """Tab A runs a prompt here, tab B one on the other ComfyUI. With B on screen the Stop
    button stops B's prompt there; A's runs on. Then B queues one there and one here (it
    waits behind A's), and the panel's Stop all ends all three."""
    client = Client(chromium, paired_server.url)
    try:
        tab_a = client.open_tab("stop-A")
        a = client.queue(tab_a)
        client.wait_row(a, "running", above=0)
        tab_b = client.open_tab("stop-B", "comfyui:other")
        b = client.queue(tab_b)
        client.wait_row(b, "running", above=0)
        assert client.row(b)["executor"] == "comfyui:other"

        client.press_stop()  # B is on screen
        client.wait_row(b, "interrupted")
        a_then = client.row(a)["fraction"]
        client.wait_row(a, "running", above=a_then)  # A's bar still moves
        assert client.local_queue()["queue_running"] == [a]
        client.page.screenshot(path=str(artifacts_dir / f"stop-tab-{paired_server.which}.png"))

        b_there = client.queue(tab_b)  # on the other server again
        client.wait_row(b_there, "running")
        client.page.select_option(".parallel-runs-executor", "local")
        b_here = client.queue(tab_b, press_run)  # waits behind A's prompt
        assert b_here in client.local_queue()["queue_pending"]
        client.page.get_by_role("button", name="Stop all").click()
        for prompt_id in (b_here, b_there, a):
            client.wait_row(prompt_id, "interrupted")
        assert client.page.is_disabled(".parallel-runs-stop-all")
        assert STOP_ALL in client.page.evaluate(COMMAND_IDS)  # also a command, for a key
        assert client.local_queue() == {"queue_running": [], "queue_pending": []}
        assert client.errors == []
    finally:
        client.close()


def test_stop_on_a_tab_takes_its_waiting_prompt_off_the_queue_only(paired_server, chromium):
    """Both local: tab A's prompt runs, tab B's waits behind it. With B on screen the Stop
    keys take B's prompt off the queue; A's runs on. Pressed again, Stop says B has nothing to
    stop and stops nothing. On tab A the Stop button stops A's prompt."""
    client = Client(chromium, paired_server.url)
    try:
        tab_a = client.open_tab("wait-A")
        a = client.queue(tab_a)
        client.wait_row(a, "running", above=0)
        tab_b = client.open_tab("wait-B")
        b = client.queue(tab_b)
        assert client.local_queue() == {"queue_running": [a], "queue_pending": [b]}

        client.press_stop_keys()  # B is on screen
        client.wait_row(b, "interrupted")
        assert client.local_queue() == {"queue_running": [a], "queue_pending": []}
        client.wait_row(a, "running", above=client.row(a)["fraction"])

        client.press_stop_keys()  # nothing of B's in flight now: said so, nothing stopped
        said = client.page.get_by_text("No prompt of this workflow tab is running or waiting.")
        said.first.wait_for(timeout=WAIT)
        assert client.row(a)["status"] == "running"
        assert client.local_queue()["queue_running"] == [a]

        switch_tab(client.page, "wait-A", tab_a)
        client.press_stop()
        client.wait_row(a, "interrupted")
        assert client.local_queue() == {"queue_running": [], "queue_pending": []}
        assert client.errors == []
    finally:
        client.close()


def test_stop_can_be_pressed_while_only_another_server_runs(paired_server, chromium):
    """Only tab B's prompt is in flight, on the other ComfyUI: the frontend's Stop button can
    be pressed (the pinned frontend greys it while ComfyUI's queue count is 0, and the count
    now includes offloaded prompts), pressing it stops B's prompt there, and the button greys
    again once nothing is in flight."""
    client = Client(chromium, paired_server.url)
    stop = client.page.get_by_role("button", name=STOP_BUTTON).first
    try:
        assert client.local_queue() == {"queue_running": [], "queue_pending": []}
        tab_b = client.open_tab("only-remote", "comfyui:other")
        b = client.queue(tab_b)
        client.wait_row(b, "running", above=0)
        stop.wait_for(state="visible", timeout=WAIT)
        client.page.wait_for_function(
            "(button) => !button.disabled", arg=stop.element_handle(), timeout=WAIT
        )
        assert client.row(b)["executor"] == "comfyui:other"
        client.press_stop()
        client.wait_row(b, "interrupted")
        client.page.wait_for_function(
            "(button) => button.disabled", arg=stop.element_handle(), timeout=WAIT
        )
        assert client.errors == []
    finally:
        client.close()
