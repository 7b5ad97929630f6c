"""The panel rebuilds itself after the websocket drops: prompts that finished, ran or waited
while the page heard nothing show with the status and outputs the server has
(GET /parallel/jobs), and live events flow again afterwards.

The frontend's own socket is closed (`api.socket.close()`) and its reconnect attempts are held
off until the server has moved on, so only the rebuild can bring the panel up to date."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from panel_harness import (
    OPEN_PANEL,
    PANEL_ROWS,
    PROMPTS,
    WAIT,
    open_comfy_page,
    queue_new_prompt,
    ui_workflow,
)

pytestmark = pytest.mark.browser

# Before any page script: while `__parallelHoldSocket` is set, new websockets go to a path the
# server refuses (404), so the frontend keeps retrying without getting through.
HOLD_SOCKET = """(() => {
  const Native = window.WebSocket;
  window.__parallelHoldSocket = false;
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      const held = window.__parallelHoldSocket;
      super(held ? String(url).replace(/\\/ws(\\?|$)/, '/parallel-held-ws$1') : url, protocols);
    }
  };
})();"""

DROP_SOCKET = """async () => {
  const { api } = await import('/scripts/api.js');
  window.__parallelReconnected = 0;
  api.addEventListener('reconnected', () => { window.__parallelReconnected += 1; });
  window.__parallelHoldSocket = true;
  api.socket.close();
  return true;
}"""


def server_jobs(url: str) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/parallel/jobs", timeout=10) as response:
        return {job["prompt_id"]: job for job in json.loads(response.read())["jobs"]}


def wait_server(page, url: str, want: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Poll GET /parallel/jobs (from the test, not the page) until each prompt has its status."""
    for _ in range(600):
        jobs = server_jobs(url)
        if all(jobs.get(pid, {}).get("status") == status for pid, status in want.items()):
            return jobs
        page.wait_for_timeout(100)
    raise AssertionError(f"server never reached {want}: {server_jobs(url)}")


def store(page) -> dict[str, dict[str, Any]]:
    return {p["prompt_id"]: p for p in page.evaluate(PROMPTS)}


def rows(page) -> dict[str, dict[str, Any]]:
    return {r["prompt_id"]: r for r in page.evaluate(PANEL_ROWS)}


def wait_row(page, prompt_id: str, status: str, thumbs: bool = False) -> None:
    page.wait_for_function(
        """([id, status, thumbs]) => {
             const row = document.querySelector(`.parallel-runs-row[data-prompt-id="${id}"]`);
             return row?.dataset.status === status
               && (!thumbs || row.querySelectorAll('img.parallel-runs-thumb').length > 0);
           }""",
        arg=[prompt_id, status, thumbs],
        timeout=WAIT,
    )


def test_panel_rebuilds_after_reconnect(comfy_server_newest, chromium, artifacts_dir):
    url = comfy_server_newest.url
    errors: list[str] = []

    def record_errors(page: Any) -> None:
        page.on("pageerror", lambda error: errors.append(str(error)))

    context, page = open_comfy_page(chromium, url, HOLD_SOCKET, before_load=record_errors)
    try:
        assert page.evaluate(OPEN_PANEL)
        client_id = page.evaluate("async () => (await import('/scripts/api.js')).api.clientId")

        # Before the drop: one finished prompt with its output, one running, one waiting.
        done = queue_new_prompt(page, ui_workflow("done", 0.3, 2), "rc-done")
        wait_row(page, done, "success", thumbs=True)
        done_outputs = store(page)[done]["outputs"]
        slow = queue_new_prompt(page, ui_workflow("slow", 4.0, 8), "rc-slow")
        waiting = queue_new_prompt(page, ui_workflow("waiting", 4.0, 8), "rc-waiting")
        assert isinstance(slow, str) and isinstance(waiting, str), (slow, waiting)
        wait_row(page, slow, "running")
        wait_row(page, waiting, "queued")

        # Drop the socket and keep it down while the server finishes `slow` and starts `waiting`.
        page.evaluate(DROP_SOCKET)
        jobs = wait_server(page, url, {slow: "success", waiting: "running"})
        assert jobs[slow]["client_id"] == client_id and jobs[slow]["outputs"]
        stale = store(page)
        assert stale[slow]["status"] == "running" and stale[waiting]["status"] == "queued", (
            "the page heard nothing while the socket was down"
        )
        assert page.evaluate("() => window.__parallelReconnected") == 0

        # Let it reconnect: the rebuild brings the panel to what the server knows.
        page.evaluate("() => { window.__parallelHoldSocket = false; }")
        page.wait_for_function("() => window.__parallelReconnected > 0", timeout=WAIT)
        wait_row(page, slow, "success", thumbs=True)
        wait_row(page, waiting, "running")
        rebuilt = store(page)
        assert rebuilt[slow]["outputs"] == jobs[slow]["outputs"]
        assert rebuilt[done]["status"] == "success" and rebuilt[done]["outputs"] == done_outputs
        panel = rows(page)
        assert next(pid for pid in panel if pid in (done, slow, waiting)) == waiting  # running 1st
        outputs = jobs[slow]["outputs"].values()
        slow_images = [i["filename"] for out in outputs for i in out["images"]]
        assert panel[slow]["thumbs"] == slow_images
        assert panel[done]["thumbs"], panel[done]
        assert page.text_content(".parallel-runs-summary") == "1 running, 0 queued"
        page.locator(".parallel-runs-panel").screenshot(
            path=str(artifacts_dir / "reconnect-rebuilt.png")
        )

        # Live events again: `waiting` finishes on the new socket, with its output.
        wait_row(page, waiting, "success", thumbs=True)
        assert page.text_content(".parallel-runs-summary") == "0 running, 0 queued"
        assert errors == []
    finally:
        context.close()
