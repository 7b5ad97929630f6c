"""Auto Queue's *Run (Instant)* keeps a workflow that runs on another ComfyUI going, as it
does a local one: the frontend queues again when ComfyUI's queue count drops to 0, and that
count includes the prompts running elsewhere. A person's steps on both frontends: pick the
mode in the Run button's menu, press Run, watch the panel, pick plain *Run* again.

ComfyUI A is the session server of that frontend; the other session server is named "other"
in A's settings (as a script would)."""

from __future__ import annotations

from typing import Any

import pytest
from panel_harness import LOAD_WORKFLOW, OPEN_PANEL, WAIT, open_comfy_page, tidy, ui_workflow

pytestmark = pytest.mark.browser
INSTANT = "Run (Instant)"
ROW = ".parallel-runs-row"
FINISHED_THERE = f"""() => [...document.querySelectorAll('{ROW}[data-status="success"]')]
  .filter((row) => row.textContent.includes('comfyui:other')).length"""
IN_FLIGHT = f"""() => document.querySelectorAll(
  '{ROW}[data-status="running"], {ROW}[data-status="queued"]').length"""
PROMPT_IDS = f"() => [...document.querySelectorAll('{ROW}')].map((row) => row.dataset.promptId)"


def choose_run_mode(page: Any, label: str) -> None:
    """Open the Run button's menu (1.58: *Run options*; 1.32: the split button's arrow), pick
    `label` and close the menu, as a person does."""
    newest = page.get_by_role("button", name="Run options")
    if newest.count():
        newest.first.click()
    else:
        page.locator(".comfyui-queue-button .p-splitbutton-dropdown").first.click()
    page.get_by_text(label, exact=True).last.click()
    page.keyboard.press("Escape")  # 1.58 keeps its menu open after a pick


def test_instant_auto_queue_runs_again_after_a_prompt_on_another_server(paired_server, chromium):
    context, page = open_comfy_page(chromium, paired_server.url)
    try:
        assert page.evaluate(OPEN_PANEL)
        page.evaluate(LOAD_WORKFLOW, [ui_workflow("instant", 0.5, 2), "instant-remote"])
        page.select_option(".parallel-runs-executor", "comfyui:other")
        choose_run_mode(page, INSTANT)
        page.get_by_role("button", name=INSTANT, exact=True).first.click()
        # one prompt at a time, each queued by the frontend when the one before it ended
        page.wait_for_function(f"() => ({FINISHED_THERE})() >= 3", timeout=WAIT)
        assert page.evaluate(IN_FLIGHT) <= 1
        choose_run_mode(page, "Run")
        page.wait_for_function(f"() => ({IN_FLIGHT})() === 0", timeout=WAIT)
        assert page.locator(f'{ROW}[data-status="failed"]').count() == 0
    finally:
        tidy(paired_server.url, page.evaluate(PROMPT_IDS))
        context.close()
