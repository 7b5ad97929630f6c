"""`install` wires settings, patches and the health route; the route runs on a bare app."""

from __future__ import annotations

import pytest
from aiohttp import web

from parallel_runs_node.parallel_runs.progress_text import FEATURE_FLAG
from parallel_runs_node.server_routes import install
from parallel_runs_node.server_routes.health import Feature, Health, health_routes


class BareServer:
    """The attributes of PromptServer that `install` touches."""

    def __init__(self) -> None:
        self.routes = web.RouteTableDef()
        self.sockets: dict = {}
        self.sockets_metadata: dict = {}

    def send_sync(self, event, data, sid=None): ...

    async def send_bytes(self, event, data, sid=None): ...

    def send_progress_text(self, text, node_id, sid=None): ...


def test_switched_off_changes_nothing():
    server, flags = BareServer(), {"supports_preview_metadata": True}
    stock = server.send_progress_text
    health = install(server, "9.9.9", flags, env={"PARALLEL_RUNS_SCOPED_PROGRESS_TEXT": "off"})
    assert health.features["scoped_progress_text"].enabled is False
    assert flags == {"supports_preview_metadata": True}
    assert server.send_progress_text == stock
    assert [route.path for route in server.routes] == ["/parallel/health", "/parallel/jobs"]


def test_on_by_default_and_installed_once():
    server, flags = BareServer(), {}
    first = install(server, "9.9.9", flags, env={})
    routes_after_first = [route.path for route in server.routes]
    again = install(server, "9.9.9", flags, env={})
    assert again is first
    assert first.features["scoped_progress_text"] == Feature(enabled=True, detail="package")
    assert flags == {FEATURE_FLAG: True}
    assert "/parallel/health" in routes_after_first
    assert [route.path for route in server.routes] == routes_after_first  # nothing twice


async def test_health_route_on_a_bare_application(aiohttp_client):
    health = Health(version="1.2.3", features={"x": Feature(enabled=True, detail="d")})
    app = web.Application()
    app.add_routes(health_routes(health))
    client = await aiohttp_client(app)
    response = await client.get("/parallel/health")
    assert response.status == 200
    assert await response.json() == {
        "name": "parallel-runs",
        "version": "1.2.3",
        "features": {"x": {"enabled": True, "detail": "d"}},
    }


class NewerServer(BareServer):
    """A ComfyUI whose methods changed shape: progress text takes a prompt id first, and
    send_sync became a coroutine."""

    def send_progress_text(self, prompt_id, text, node_id, sid=None): ...

    async def send_sync(self, event, data, sid=None): ...


def test_patches_of_methods_that_changed_stay_off_and_health_says_why(caplog):
    server, flags = NewerServer(), {}
    stock = (server.send_progress_text, server.send_bytes, server.send_sync)
    health = install(server, "9.9.9", flags, env={})
    progress, starts = health.features["scoped_progress_text"], health.features["start_times"]
    assert progress.enabled is False and starts.enabled is False
    assert "send_progress_text() takes (prompt_id, text, node_id, sid)" in progress.detail
    assert "send_sync() is no longer a plain function" in starts.detail
    assert (server.send_progress_text, server.send_bytes, server.send_sync) == stock
    assert flags == {}  # the flag is not advertised for frames we would not scope
    lines = [r.getMessage() for r in caplog.records if "ComfyUI's own behaviour" in r.getMessage()]
    refused = [f for f in health.features.values() if f.detail.startswith("off:")]
    assert len(lines) == len(refused)  # one line per feature left off (this bare server has
    assert progress in refused and starts in refused  # no prompt queue to list either)
    assert "/parallel/jobs" in [route.path for route in server.routes]  # the rest still works


def test_the_test_only_time_scale_shortens_the_runpod_relays_waits():
    from parallel_runs_node.server_routes.executors.install import (
        TIME_SCALE_ENV,
        scaled_runpod_options,
    )
    from parallel_runs_node.server_routes.executors.runpod.executor import RETRY_DELAYS

    for unset in ({}, {TIME_SCALE_ENV: ""}, {TIME_SCALE_ENV: "fast"}, {TIME_SCALE_ENV: "nan"}):
        assert scaled_runpod_options(unset) == {}, unset  # production values
    assert scaled_runpod_options({TIME_SCALE_ENV: "1"}) == {}
    options = scaled_runpod_options({TIME_SCALE_ENV: "0.1"})
    assert options["retry_delays"] == (RETRY_DELAYS[0] * 0.1, RETRY_DELAYS[1] * 0.1)
    planner, usual = options["planner"](started=0.0), type(options["planner"](started=0.0))()
    assert planner.rate == pytest.approx(usual.rate * 10)
    assert planner.queue_first == pytest.approx(usual.queue_first * 0.1)
    assert planner.running_default == pytest.approx(usual.running_default * 0.1)
    assert planner.delay(0.0, None, None) < usual.delay(0.0, None, None) / 5  # first poll
    assert scaled_runpod_options({TIME_SCALE_ENV: "0"})["retry_delays"][0] == RETRY_DELAYS[0] / 100
