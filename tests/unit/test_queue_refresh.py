"""Pages reload their queue lists as offloaded prompts change status: `parallel.job` through
send_sync leads to ComfyUI's own `queue_updated()` once per change."""

from __future__ import annotations

import pytest

from parallel_runs_node.server_routes.patches.guard import PatchRefused
from parallel_runs_node.server_routes.patches.queue_refresh import watch_offloaded_status


class Server:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))

    def queue_updated(self):
        self.send_sync("status", {"status": {"exec_info": {"queue_remaining": 0}}})


def test_each_status_change_sends_status_once():
    server = Server()
    watch_offloaded_status(server)
    job = {"prompt_id": "p1", "executor": "comfyui:other"}
    for status in ("queued", "queued", "running", "running", "success"):
        server.send_sync("parallel.job", {**job, "status": status}, "client-a")
    server.send_sync("progress", {"prompt_id": "p1", "value": 1, "max": 2}, "client-a")
    server.send_sync("parallel.job", {**job, "prompt_id": "p2", "status": "queued"}, "client-b")
    events = [(event, sid) for event, _data, sid in server.sent]
    assert events == [
        ("parallel.job", "client-a"),
        ("status", None),  # to everyone, as ComfyUI sends it
        ("parallel.job", "client-a"),
        ("parallel.job", "client-a"),
        ("status", None),
        ("parallel.job", "client-a"),
        ("parallel.job", "client-a"),
        ("status", None),
        ("progress", "client-a"),
        ("parallel.job", "client-b"),
        ("status", None),
    ]
    assert watch_offloaded_status(server) is watch_offloaded_status(server)  # wrapped once


def test_odd_announcements_and_a_failing_refresh_never_raise(caplog):
    server = Server()
    watch_offloaded_status(server)
    server.send_sync("parallel.job", "not a dict")
    server.send_sync("parallel.job", {"prompt_id": 3, "status": "running"})

    def broken():
        raise RuntimeError("closed")

    server.queue_updated = broken
    server.send_sync("parallel.job", {"prompt_id": "p", "status": "running"})
    assert [event for event, *_ in server.sent] == ["parallel.job"] * 3
    assert "reloading the queue lists failed" in caplog.text


def test_without_queue_updated_nothing_is_wrapped():
    class Older:
        def send_sync(self, event, data, sid=None): ...

    server = Older()
    stock = server.send_sync
    with pytest.raises(PatchRefused, match="queue_updated"):
        watch_offloaded_status(server)
    assert server.send_sync == stock
