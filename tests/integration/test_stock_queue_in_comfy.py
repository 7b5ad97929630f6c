"""The stock lists' routes on a real ComfyUI 0.3.75 with the package: what its own queue and
history hold (a saved output, a preview, a failure raised inside a node) and a prompt running
on another ComfyUI come out of GET /api/jobs in the shape frontend 1.58.1 accepts; GET /queue
lists the remote one for the pinned frontend; both follow `parallel_client`; the jobs API's
cancel stops the remote prompt where it runs.

A is the pinned session server; the newest session server is named "other" in A's settings."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from frontend_jobs_schema import JobsList
from graphs import slow_note_graph

pytestmark = pytest.mark.comfy
QUEUE = "status=in_progress,pending&limit=200&offset=0"  # what the newest frontend asks
HISTORY = "status=completed,failed,cancelled&limit=200&offset=0"


def call(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll `check` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def jobs(url: str, query: str) -> dict[str, dict[str, Any]]:
    """GET /api/jobs, checked as the frontend parses it; the jobs by id."""
    answer = call(f"{url}/api/jobs?{query}")
    JobsList.model_validate(answer)
    return {job["id"]: job for job in answer["jobs"]}


def queue_local(url: str, prompt: dict[str, Any], client: str) -> str:
    prompt_id = str(uuid.uuid4())
    call(f"{url}/prompt", {"prompt": prompt, "client_id": client, "prompt_id": prompt_id})
    return prompt_id


@pytest.fixture
def servers(comfy_server, comfy_server_newest) -> Iterator[tuple[str, str]]:
    here = comfy_server.url
    call(f"{here}/parallel/executors/comfyui", {"name": "other", "url": comfy_server_newest.url})
    try:
        yield here, comfy_server_newest.url
    finally:
        call(f"{here}/parallel/executors/comfyui", {"name": "other", "url": None})


def queue_count(url: str) -> int:
    """ComfyUI's own count of prompts waiting or running, as GET /prompt and `status` give it."""
    return call(f"{url}/prompt")["exec_info"]["queue_remaining"]


def test_real_prompts_come_out_as_the_frontends_read_them(servers):
    here, there = servers
    one, two = f"it-one-{uuid.uuid4().hex[:8]}", f"it-two-{uuid.uuid4().hex[:8]}"
    features = call(f"{here}/parallel/health")["features"]
    health = features["stock_queue"]
    assert health["enabled"] and "jobs API served by the package" in health["detail"]
    assert features["queue_count"]["enabled"]

    saved = queue_local(here, slow_note_graph("saved", output="save"), one)
    shown = queue_local(here, slow_note_graph("shown", output="preview"), two)
    failing = slow_note_graph("fails", output="save")
    failing["4"]["inputs"]["filename_prefix"] = "../../outside"  # refused while it runs
    failed = queue_local(here, failing, one)
    mine = {saved, shown, failed}
    until(lambda: mine <= set(jobs(here, HISTORY)), "the local prompts to finish")
    before = queue_count(here)

    remote = call(
        f"{here}/parallel/offload/prompt",
        {
            "prompt": slow_note_graph("far", seconds=60, steps=60),
            "client_id": two,
            "executor": "comfyui:other",
        },
    )["prompt_id"]
    running = until(
        lambda: (
            jobs(here, QUEUE).get(remote, {}).get("status") == "in_progress"
            and jobs(here, QUEUE)[remote]
        ),
        "the remote prompt to run",
    )
    try:
        assert running["parallel_runs"] == {"executor": "comfyui:other"}
        assert queue_count(here) == before + 1  # counted as a prompt of this server's queue
        finished = jobs(here, HISTORY)
        assert finished[saved]["status"] == "completed"
        assert finished[saved]["preview_output"]["type"] == "output"
        assert finished[saved]["preview_output"]["mediaType"] == "images"
        assert finished[shown]["preview_output"]["type"] == "temp"
        assert finished[failed]["status"] == "failed"
        error = finished[failed]["execution_error"]
        assert (error["node_id"], error["node_type"]) == ("4", "SaveImage")
        assert error["traceback"] and all(isinstance(line, str) for line in error["traceback"])

        # the client scope, on the jobs API and the pinned frontend's /queue
        assert set(jobs(here, f"{HISTORY}&parallel_client={one}")) == {saved, failed}
        assert set(jobs(here, f"{QUEUE}&parallel_client={two}")) == {remote}
        assert jobs(here, f"{QUEUE}&parallel_client={one}") == {}
        queue = call(f"{here}/queue")
        (item,) = [i for i in queue["queue_running"] if i[1] == remote]
        assert item[3]["parallel_runs"]["executor"] == "comfyui:other"
        assert item[3]["client_id"] == two
        assert call(f"{here}/queue?parallel_client={one}")["queue_running"] == []
        history = call(f"{here}/history?parallel_client={one}")
        assert {saved, failed} <= set(history) and shown not in history

        # the newest frontend's Cancel: stopped where it runs
        offloaded = call(f"{here}/parallel/offload/jobs")["jobs"]
        job_there = next(j["job_id"] for j in offloaded if j["prompt_id"] == remote)
        assert call(f"{here}/api/jobs/{remote}/cancel", {}) == {"cancelled": True}
        assert jobs(here, HISTORY)[remote]["status"] == "cancelled"

        def gone_there() -> bool:
            there_queue = json.dumps(call(f"{there}/queue"))
            return job_there not in there_queue

        until(gone_there, "the prompt to leave the other server's queue", 30)
        until(lambda: queue_count(here) == before, "the queue count to drop again", 10)
        assert call(f"{here}/api/jobs/{remote}/cancel", {}) == {"cancelled": False}
    finally:
        with contextlib.suppress(OSError):  # already stopped when the test got that far
            call(f"{here}/parallel/offload/cancel", {"prompt_id": remote})
        call(f"{here}/history", {"delete": [*mine, remote]})
