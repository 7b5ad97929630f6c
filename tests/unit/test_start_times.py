"""Start times of running local prompts: noted from ComfyUI's own `execution_start` as it is
sent, so GET /parallel/jobs can tell a page that loads mid-run how long a prompt has run."""

from __future__ import annotations

import threading

from aiohttp import web
from prompt_queue import PromptQueue, item

from parallel_runs_node.server_routes.jobs.routes import jobs_routes, local_jobs
from parallel_runs_node.server_routes.patches.start_times import StartTimes, watch_start_times


class SendingServer:
    """A PromptServer's send_sync as the execution thread calls it; records what passes."""

    def __init__(self) -> None:
        self.sent: list[tuple] = []
        self.prompt_queue = PromptQueue()

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))


def test_execution_start_is_noted_and_every_event_still_sent():
    server = SendingServer()
    times = watch_start_times(server, StartTimes())
    server.send_sync("execution_start", {"prompt_id": "p1", "timestamp": 1234.9}, "c1")
    server.send_sync("progress", {"prompt_id": "p2", "timestamp": 99, "value": 1}, "c1")
    server.send_sync(1, b"binary preview", None)
    assert times.get("p1") == 1234
    assert times.get("p2") is None  # only starts count
    assert [event for event, _, _ in server.sent] == ["execution_start", "progress", 1]
    assert server.sent[0][2] == "c1"


def test_installed_once():
    server = SendingServer()
    first = watch_start_times(server, StartTimes())
    wrapped = server.send_sync
    assert watch_start_times(server, StartTimes()) is first
    assert server.send_sync is wrapped
    server.send_sync("status", {}, None)
    assert len(server.sent) == 1  # not sent twice through two wrappers


def test_malformed_starts_are_ignored():
    times = StartTimes()
    for data in (
        None,
        {},
        {"prompt_id": 5, "timestamp": 1},
        {"prompt_id": "p", "timestamp": True},
        {"prompt_id": "p", "timestamp": "soon"},
        ["prompt_id", "p"],
    ):
        times.note("execution_start", data)
    assert times.get("p") is None


def test_only_the_newest_are_kept_and_a_restart_moves_to_the_end():
    times = StartTimes(cap=3)
    for n in range(3):
        times.note("execution_start", {"prompt_id": f"p{n}", "timestamp": n})
    times.note("execution_start", {"prompt_id": "p0", "timestamp": 10})  # p0 again: newest now
    times.note("execution_start", {"prompt_id": "p3", "timestamp": 3})
    assert [times.get(f"p{n}") for n in range(4)] == [10, None, 2, 3]


def test_notes_from_another_thread_are_read_safely():
    times = StartTimes(cap=50)

    def execution_thread() -> None:
        for n in range(2000):
            times.note("execution_start", {"prompt_id": f"p{n}", "timestamp": n})

    worker = threading.Thread(target=execution_thread)
    worker.start()
    while worker.is_alive():
        times.get("p1999")
    worker.join()
    assert times.get("p1999") == 1999
    assert times.get("p0") is None


async def test_jobs_route_reports_when_a_running_prompt_started(aiohttp_client):
    server = SendingServer()
    server.prompt_queue.currently_running[7] = item(7, "run", "client-a", "wf-a")
    server.prompt_queue.queue = [item(8, "next", "client-a", "wf-a")]
    times = watch_start_times(server, StartTimes())
    server.send_sync("execution_start", {"prompt_id": "run", "timestamp": 1_700_000_000_500}, "a")
    app = web.Application()
    app.add_routes(jobs_routes([local_jobs(server, started_at=times.get)]))
    client = await aiohttp_client(app)
    response = await client.get("/parallel/jobs")
    assert response.status == 200
    jobs = {job["prompt_id"]: job for job in (await response.json())["jobs"]}
    assert jobs["run"]["status"] == "running"
    assert jobs["run"]["started_at"] == 1_700_000_000_500
    assert jobs["next"].get("started_at") is None  # still waiting: no start yet
