"""`GET /parallel/jobs` on a bare app, over a queue shaped like ComfyUI's PromptQueue."""

from __future__ import annotations

import pytest
from aiohttp import web
from prompt_queue import SECRET, PromptQueue, item

from parallel_runs_node.server_routes.jobs.routes import JobSummary, jobs_routes, local_jobs


def finished(entry: tuple, status: str, messages: list) -> dict:
    return {
        "prompt": entry[:5],
        "outputs": {"4": {"images": [{"filename": "a.png", "subfolder": "", "type": "temp"}]}},
        "status": {"status_str": status, "completed": status == "success", "messages": messages},
        "meta": {},
    }


@pytest.fixture
def server():
    queue = PromptQueue()
    queue.currently_running[7] = item(7, "run", "client-a", "wf-a")
    queue.queue = [item(9, "later", "client-b", None), item(8, "next", "client-a", "wf-b")]
    done = item(3, "done", "client-a", "wf-a")
    queue.history["done"] = finished(
        done,
        "success",
        [
            ("execution_start", {"prompt_id": "done", "timestamp": 100}),
            ("execution_success", {"prompt_id": "done", "timestamp": 200}),
        ],
    )
    failed = item(4, "failed", "client-b", "wf-c")
    queue.history["failed"] = finished(
        failed,
        "error",
        [
            ("execution_start", {"prompt_id": "failed", "timestamp": 300}),
            (
                "execution_error",
                {
                    "prompt_id": "failed",
                    "node_id": "2",
                    "node_type": "ImageScale",
                    "exception_message": "bad size",
                    "exception_type": "ValueError",
                    "timestamp": 400,
                },
            ),
        ],
    )
    stopped = item(5, "stopped", "client-a", "wf-b")
    queue.history["stopped"] = finished(
        stopped,
        "error",
        [
            ("execution_start", {"prompt_id": "stopped", "timestamp": 500}),
            ("execution_interrupted", {"prompt_id": "stopped", "timestamp": 600}),
        ],
    )

    class Server:
        prompt_queue = queue

    return Server()


async def client_for(aiohttp_client, *sources):
    app = web.Application()
    app.add_routes(jobs_routes(list(sources)))
    return await aiohttp_client(app)


async def test_running_first_then_queued_in_order_then_newest_finished(aiohttp_client, server):
    client = await client_for(aiohttp_client, local_jobs(server))
    response = await client.get("/parallel/jobs")
    assert response.status == 200
    jobs = (await response.json())["jobs"]
    assert [(j["prompt_id"], j["status"]) for j in jobs] == [
        ("run", "running"),
        ("next", "queued"),
        ("later", "queued"),
        ("stopped", "interrupted"),
        ("failed", "error"),
        ("done", "success"),
    ]
    by_id = {j["prompt_id"]: j for j in jobs}
    assert by_id["run"]["workflow_id"] == "wf-a"
    assert by_id["run"]["client_id"] == "client-a"
    assert by_id["run"]["executor"] == "local"
    assert "workflow_id" not in by_id["later"]
    assert by_id["done"]["started_at"] == 100 and by_id["done"]["finished_at"] == 200
    assert by_id["done"]["outputs"]["4"]["images"][0]["filename"] == "a.png"
    assert by_id["failed"]["error"] == {
        "message": "bad size",
        "type": "ValueError",
        "node_id": "2",
        "node_type": "ImageScale",
    }
    assert SECRET not in await response.text()


async def test_limit_caps_finished_jobs_only(aiohttp_client, server):
    client = await client_for(aiohttp_client, local_jobs(server))
    jobs = (await (await client.get("/parallel/jobs?limit=1")).json())["jobs"]
    assert [j["prompt_id"] for j in jobs] == ["run", "next", "later", "stopped"]


async def test_bad_limit_is_a_400_naming_the_field(aiohttp_client, server):
    client = await client_for(aiohttp_client, local_jobs(server))
    for query in ("limit=-1", "limit=lots", "colour=red"):
        response = await client.get(f"/parallel/jobs?{query}")
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["type"] == "invalid_query"
        assert error["field"] in {"limit", "colour"}


async def test_sources_merge_first_wins_and_a_broken_source_is_skipped(aiohttp_client, server):
    remote = [
        JobSummary(prompt_id="remote-1", status="running", executor="runpod:ep1", started_at=1),
        JobSummary(prompt_id="run", status="success", executor="runpod:ep1"),
    ]

    def broken():
        raise RuntimeError("registry offline")

    sources = [local_jobs(server), broken, lambda: remote]
    client = await client_for(aiohttp_client, *sources)
    jobs = (await (await client.get("/parallel/jobs")).json())["jobs"]
    by_id = {j["prompt_id"]: j for j in jobs}
    assert by_id["remote-1"]["executor"] == "runpod:ep1"
    assert by_id["run"]["status"] == "running"  # the local queue was first
    assert [j["status"] for j in jobs][:2] == ["running", "running"]


async def test_empty_queue(aiohttp_client):
    class Server:
        prompt_queue = PromptQueue()

    client = await client_for(aiohttp_client, local_jobs(Server()))
    assert await (await client.get("/parallel/jobs")).json() == {"jobs": []}


def test_executor_must_be_local_or_a_named_executor():
    """Every executor kind is listed (a prompt on another ComfyUI server too), by the same
    name rule as its record."""
    for executor in ("local", "runpod:ep1", "comfyui:gpu2", "comfyui:lan.box-2"):
        assert JobSummary(prompt_id="x", status="queued", executor=executor).executor == executor
    for bad in ("runpod:../../etc", "comfyui:", "comfyui", "Local", "comfyui:a b"):
        with pytest.raises(ValueError):
            JobSummary(prompt_id="x", status="queued", executor=bad)
    with pytest.raises(ValueError):
        JobSummary(prompt_id="x", status="done")


async def test_history_entries_are_validated_not_copied(aiohttp_client, server):
    """History is ComfyUI's (and its other custom nodes'): odd values become None or skip the
    entry, never reach the browser as they are."""
    queue = server.prompt_queue
    odd = finished(
        item(6, "odd", "client-a", "wf-a"),
        "success",
        [
            ("execution_start", {"prompt_id": "odd", "timestamp": "soon"}),
            ("execution_success", {"prompt_id": "odd", "timestamp": 700.9}),
        ],
    )
    queue.history["odd"] = odd
    queue.history["no-status"] = {
        **finished(item(2, "no-status", "c", None), "x", []),
        "status": None,
    }
    queue.history["bad-client"] = finished((1, "bad-client", {}, {"client_id": 5}, []), "x", [])
    client = await client_for(aiohttp_client, local_jobs(server))
    response = await client.get("/parallel/jobs")
    by_id = {j["prompt_id"]: j for j in (await response.json())["jobs"]}
    assert "started_at" not in by_id["odd"] and by_id["odd"]["finished_at"] == 700
    assert by_id["no-status"]["status"] == "error"
    assert "bad-client" not in by_id and "done" in by_id  # one bad entry hides nothing else
