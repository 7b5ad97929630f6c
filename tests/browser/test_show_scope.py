""" "Show prompts from": a person switches the setting between this browser tab and every
client of the server, and the panel and the title change together. Two clients of one ComfyUI
(browser contexts): client two's prompt runs while client one's waits behind it. Runs on the
pinned and the newest frontend."""

from __future__ import annotations

import uuid

import pytest
from panel_harness import (
    LOAD_WORKFLOW,
    OPEN_PANEL,
    PANEL_ROWS,
    WAIT,
    choose_setting,
    open_comfy_page,
    queue_with_keyboard,
    tidy,
    ui_workflow,
)

pytestmark = pytest.mark.browser
SETTING = "ParallelRuns.Show.From"
LABEL = "Show prompts from (panel"
THIS_TAB, EVERY_CLIENT = "This browser tab", "Every client of this server"
# The panel's rows in flight (earlier tests' finished prompts may be listed for every client).
ORIGINS = """() => Object.fromEntries([...document.querySelectorAll('.parallel-runs-row')]
  .filter((row) => ['queued', 'running'].includes(row.dataset.status))
  .map((row) => [row.dataset.promptId, row.dataset.origin]))"""


def queue_from(page, name: str, seconds: float) -> str:
    """Load a workflow into a new tab and press Ctrl+Enter; the id of the prompt it queued."""
    page.evaluate(LOAD_WORKFLOW, [ui_workflow(f"{name} {uuid.uuid4().hex[:6]}", seconds), name])
    queue_with_keyboard(page)
    page.wait_for_function("() => window.__parallelRuntime.store.all().length === 1", timeout=WAIT)
    return page.evaluate("() => window.__parallelRuntime.store.all()[0].prompt_id")


def wait_rows(page, expected: dict[str, str]) -> None:
    """Until the panel lists exactly these prompt ids in flight, with these origins."""
    page.wait_for_function(
        f"(want) => JSON.stringify(({ORIGINS})()) === JSON.stringify(want)",
        arg=expected,
        timeout=WAIT,
    )


def wait_title(page, prefix: str) -> None:
    page.wait_for_function("(p) => document.title.startsWith(p)", arg=prefix, timeout=WAIT)


@pytest.mark.parametrize("which", ["pinned", "newest"])
def test_the_setting_switches_panel_and_title_together(request, chromium, artifacts_dir, which):
    server = request.getfixturevalue("comfy_server" if which == "pinned" else "comfy_server_newest")
    contexts, prompts = [], []
    try:
        ctx_one, one = open_comfy_page(chromium, server.url)
        ctx_two, two = open_comfy_page(chromium, server.url)
        contexts += [ctx_one, ctx_two]
        for page in (one, two):
            assert page.evaluate(OPEN_PANEL)
        theirs = queue_from(two, "client-two", 60.0)  # stopped when the test ends
        prompts.append(theirs)
        two.wait_for_function(
            "(id) => window.__parallelRuntime.store.get(id)?.status === 'running'",
            arg=theirs,
            timeout=WAIT,
        )
        mine = queue_from(one, "client-one", 0.5)  # waits behind client two's prompt
        prompts.append(mine)

        # This browser tab (the default): client one sees its own waiting prompt only.
        wait_rows(one, {mine: "tab"})
        wait_title(one, "[0 running +1 queued ")

        choose_setting(one, LABEL, EVERY_CLIENT)
        wait_rows(one, {theirs: "client", mine: "tab"})
        wait_title(one, "[1 running +1 queued ")
        label = one.locator(f'.parallel-runs-row[data-prompt-id="{theirs}"] .parallel-runs-origin')
        assert label.inner_text() == "another client"
        assert [r["prompt_id"] for r in one.evaluate(PANEL_ROWS)][:2] == [theirs, mine]
        one.locator(".parallel-runs-panel").screenshot(
            path=str(artifacts_dir / f"show-scope-every-client-{which}.png")
        )

        choose_setting(one, LABEL, THIS_TAB)
        wait_rows(one, {mine: "tab"})
        wait_title(one, "[0 running +1 queued ")
        # Client two never chose: it still shows only its own prompt.
        wait_rows(two, {theirs: "tab"})
    finally:
        tidy(server.url, prompts, {SETTING: "tab"})
        for context in contexts:
            context.close()
