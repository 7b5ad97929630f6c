"""A websocket client that announces hostile feature flags (here a string) and gets progress
text from a script's prompt queued for it: ComfyUI stays up, and the page of a person using
it keeps working: Ctrl+Enter queues their workflow, and the panel shows it running with its
progress text and finishing."""

from __future__ import annotations

import json
import uuid

import pytest
from graphs import note_text_graph
from panel_harness import OPEN_PANEL, PANEL_ROWS, WAIT, open_comfy_page, ui_workflow
from websockets.sync.client import connect

pytestmark = pytest.mark.browser

LOAD = """async ([workflow, name]) => {
  const { app } = await import('/scripts/app.js');
  await app.loadGraphData(workflow, true, true, name);
  return true;
}"""


def queue_as(context, url: str, client_id: str) -> str:
    """A script's prompt for the hostile client: its progress text goes to that client."""
    body = {"prompt": note_text_graph("script {width}"), "client_id": client_id}
    answer = context.request.post(f"{url}/prompt", data=json.dumps(body))
    assert answer.ok, answer.text()
    return answer.json()["prompt_id"]


@pytest.mark.parametrize("which", ["pinned", "newest"])
def test_page_stays_usable_next_to_a_hostile_client(request, chromium, artifacts_dir, which):
    server = request.getfixturevalue("comfy_server" if which == "pinned" else "comfy_server_newest")
    hostile_id = f"hostile-{uuid.uuid4().hex}"
    ws_url = server.url.replace("http", "ws", 1) + f"/ws?clientId={hostile_id}"
    note = f"person {uuid.uuid4().hex[:6]}"
    context, page = open_comfy_page(chromium, server.url)
    try:
        with connect(ws_url, max_size=None) as hostile:
            hostile.send(json.dumps({"type": "feature_flags", "data": "x"}))
            hostile.recv(timeout=10)  # ComfyUI has read the flags once it answers
            queue_as(context, server.url, hostile_id)
            page.evaluate(OPEN_PANEL)
            page.evaluate(LOAD, [ui_workflow(note, seconds=0.6, steps=3), f"{note}.json"])
            page.locator("#graph-canvas").click(position={"x": 700, "y": 600})
            page.keyboard.press("Control+Enter")
            page.wait_for_function(
                """(note) => [...document.querySelectorAll('.parallel-runs-row')].some((row) =>
                  row.dataset.status === 'success'
                  && row.querySelector('.parallel-runs-text')?.textContent.includes(note))""",
                arg=note,
                timeout=WAIT,
            )
            frames = []
            while len(frames) < 200:  # everything the hostile client got meanwhile
                try:
                    frames.append(hostile.recv(timeout=0.5))
                except TimeoutError:
                    break
        rows = page.evaluate(PANEL_ROWS)
        page.screenshot(path=str(artifacts_dir / f"hostile-client-{which}.png"))
    finally:
        context.close()
    assert any(row["status"] == "success" and note in (row["text"] or "") for row in rows)
    # the hostile client got the script's progress text, in the legacy layout
    texts = [f for f in frames if isinstance(f, bytes) and f[:4] == b"\0\0\0\3"]
    assert any(b"script 64" in f for f in texts)
    assert server.poll().value == "ready"
