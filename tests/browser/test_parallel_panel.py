"""The Parallel Runs panel in a real ComfyUI page: two clients (browser contexts) and two
workflow tabs in one client queue prompts that are in flight together. Each prompt's progress
and outputs stay in its own tab and its own panel row, stop ends only its prompt, and the title
counts what is in flight. Runs on the pinned and the newest frontend."""

from __future__ import annotations

import uuid

import pytest
from panel_harness import (
    CANVAS,
    CLICK_STOP,
    OPEN_PANEL,
    PANEL_ROWS,
    PROMPTS,
    WAIT,
    WATCH_STOCK_LISTENERS,
    open_and_queue,
    open_comfy_pages,
    press_run,
    switch_tab,
    ui_workflow,
)

pytestmark = pytest.mark.browser


def open_pages(browser, url):
    """Two clients, their pages loaded side by side, each with the panel open."""
    clients = open_comfy_pages(browser, url, 2)
    for _context, page in clients:
        page.evaluate(WATCH_STOCK_LISTENERS)
        assert page.evaluate(OPEN_PANEL)
    return clients


def prompt(page, prompt_id):
    return next(p for p in page.evaluate(PROMPTS) if p["prompt_id"] == prompt_id)


def row(page, prompt_id):
    return next((r for r in page.evaluate(PANEL_ROWS) if r["prompt_id"] == prompt_id), None)


def wait_status(page, prompt_id, status):
    page.wait_for_function(
        """([id, status]) => window.__parallelRuntime.store.get(id)?.status === status
           && document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]`)
                ?.dataset.status === status""",
        arg=[prompt_id, status],
        timeout=WAIT,
    )


def only_id(page, workflow_id):
    """The one prompt queued from this workflow tab (once the page knows of it)."""
    page.wait_for_function(
        f"(wf) => ({PROMPTS})().some((p) => p.workflow_id === wf)", arg=workflow_id, timeout=WAIT
    )
    ids = [p["prompt_id"] for p in page.evaluate(PROMPTS) if p["workflow_id"] == workflow_id]
    assert len(ids) == 1, ids
    return ids[0]


@pytest.mark.parametrize("which", ["pinned", "newest"])
def test_prompts_stay_in_their_tab_and_row(request, chromium, artifacts_dir, which):
    server = request.getfixturevalue("comfy_server" if which == "pinned" else "comfy_server_newest")
    tag = uuid.uuid4().hex[:6]
    notes = {k: f"note {k} {tag}" for k in ("A", "B", "C1", "C2")}
    contexts = []
    try:
        (ctx1, one), (ctx2, two) = open_pages(chromium, server.url)
        contexts += [ctx1, ctx2]

        # Client one: tab A queues, then tab B (now on screen) queues. Client two: C1, C2.
        tab_a = open_and_queue(one, ui_workflow(notes["A"], 5.0), "tab-A")
        tab_b = open_and_queue(one, ui_workflow(notes["B"], 6.0), "tab-B")
        tab_c = open_and_queue(two, ui_workflow(notes["C1"], 0.6), "tab-C")
        assert len({tab_a, tab_b, tab_c}) == 3
        a, b = only_id(one, tab_a), only_id(one, tab_b)
        c1 = only_id(two, tab_c)
        press_run(two)  # the same tab again, with the Run button
        two.wait_for_function(f"() => ({PROMPTS})().length === 2", timeout=WAIT)
        c2 = next(p["prompt_id"] for p in two.evaluate(PROMPTS) if p["prompt_id"] != c1)

        # In flight together: A running, B queued in client one; C1, C2 queued in client two.
        wait_status(one, a, "running")
        one.wait_for_function(
            '(id) => Number(document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]'
            " .parallel-runs-bar`).dataset.fraction) > 0",
            arg=a,
            timeout=WAIT,
        )
        title_both = one.title()
        assert title_both.startswith("[1 running +1 queued "), (title_both, one.evaluate(PROMPTS))
        rows = one.evaluate(PANEL_ROWS)
        assert [r["prompt_id"] for r in rows][:2] == [a, b]  # running first
        assert row(one, b)["status"] == "queued"
        one.screenshot(path=str(artifacts_dir / f"panel-{which}-in-flight.png"))

        # Stop C2 while it waits: removed from the queue; C1 untouched.
        two.evaluate(CLICK_STOP, c2)
        wait_status(two, c2, "interrupted")
        assert prompt(two, c1)["status"] == "queued"

        # A finishes while tab B is on screen: its output and note stay out of tab B.
        wait_status(one, a, "success")
        assert prompt(one, a)["progress_text"]["3"] == notes["A"]
        canvas_b = one.evaluate(CANVAS)
        assert canvas_b["visible"] == tab_b
        assert notes["A"] not in canvas_b["texts"].values()
        assert canvas_b["images"].get("4", []) == []
        a_images = [i["filename"] for i in prompt(one, a)["outputs"]["4"]["images"]]
        one.wait_for_function(
            '(id) => document.querySelectorAll(`.parallel-runs-row[data-prompt-id="${id}"]'
            " img.parallel-runs-thumb`).length > 0",
            arg=a,
            timeout=WAIT,
        )
        assert row(one, a)["thumbs"] == a_images

        # B runs; switch to tab A: A's outputs are there, B's progress is not painted on A.
        wait_status(one, b, "running")
        one.wait_for_timeout(600)
        assert switch_tab(one, "tab-A", tab_a) == tab_a
        one.wait_for_timeout(1200)
        canvas_a = one.evaluate(CANVAS)
        assert canvas_a["images"].get("4") == a_images
        assert prompt(one, b)["status"] == "running"
        assert row(one, b)["fraction"] > 0
        one.screenshot(path=str(artifacts_dir / f"panel-{which}.png"))
        one.locator(".parallel-runs-panel").screenshot(
            path=str(artifacts_dir / f"panel-{which}-rows.png")
        )

        # Stop B while it runs: only B ends; C1 (the other client) runs next and succeeds.
        assert row(one, b)["stop"], (one.evaluate(PROMPTS), one.evaluate(PANEL_ROWS))
        one.evaluate(CLICK_STOP, b)
        wait_status(one, b, "interrupted")
        wait_status(two, c1, "success")
        assert prompt(one, a)["status"] == "success"
        # Progress text reaches the frontend only in the tab that queued the prompt.
        texts_two = [e["text"] for e in two.evaluate("() => window.__parallelPainted")]
        texts_one = [e["text"] for e in one.evaluate("() => window.__parallelPainted")]
        assert notes["C1"] in texts_two
        assert notes["A"] not in texts_one  # tab B was on screen when A's note came
        assert row(two, c1)["thumbs"]
        one.wait_for_function("() => !document.title.startsWith('[')", timeout=WAIT)
        two.screenshot(path=str(artifacts_dir / f"panel-{which}-client-two.png"))

        # Every canvas event the stock listeners got belonged to the tab on screen (a
        # progress_state without nodes is the scope clearing a tab's paint on a switch).
        owners = {a: tab_a, b: tab_b}
        painted = [e for e in one.evaluate("() => window.__parallelPainted") if e["nodes"] != 0]
        # B ran with its tab on screen, so its events were painted (the check below is not
        # vacuous); A's were only if A started before tab B opened, which a busy machine
        # may not do.
        assert b in {e["prompt_id"] for e in painted}
        wrong = [e for e in painted if owners.get(e["prompt_id"], e["visible"]) != e["visible"]]
        assert wrong == [], (wrong, tab_a, tab_b, a, b)
        assert {p["prompt_id"] for p in one.evaluate(PROMPTS)} == {a, b}
        assert {p["prompt_id"] for p in two.evaluate(PROMPTS)} == {c1, c2}
    finally:
        for context in contexts:
            context.close()
