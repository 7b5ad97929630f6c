"""Faults of a ComfyUI server a prompt runs on: its websocket drops (the prompt is found again
and finishes), it goes away for good (the prompt ends naming the server), it restarts (the
prompt is lost there, and the user is told so); and the relay side restarted while its prompt
runs on the other one (followed again, its output saved once)."""

from __future__ import annotations

import contextlib
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from early_servers import Early, early_fixture
from graphs import slow_note_graph
from offload_harness import Harness, offload_app, wait_until

from conftest import find_comfyui, make_base_directory
from parallel_runs_node.parallel_runs.client.process import ComfyProcess
from parallel_runs_node.server_routes.executors.records import JobRecord


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def comfy_d(base: Path, port: int) -> ComfyProcess:
    """A ComfyUI with this package (for its slow node) on a fixed port, so that a restart
    comes back at the same address."""
    if not (base / "custom_nodes").exists():
        make_base_directory(base)
    return ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=base,
        port=port,
        python=sys.executable,
        log_path=base / "comfyui.log",
    ).start(timeout=180)


@early_fixture()
@contextlib.contextmanager
def server_d(early: Early) -> Iterator[ComfyProcess]:
    """Started ahead of the module, in the background."""
    server = comfy_d(early.path, free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def relay(tmp_path, server_d) -> AsyncIterator[Harness]:
    env = {"PARALLEL_RUNS_COMFYUI_SERVERS": f"d={server_d.url}"}
    options = {"reconnect_for": 3.0, "quiet_check": 0.5}
    async with offload_app(tmp_path / "a", env, comfyui_options=options) as harness:
        yield harness


async def running_on_d(relay: Harness, seconds: float) -> str:
    graph = slow_note_graph(seconds=seconds, steps=max(4, int(seconds * 4)))
    prompt_id = await relay.offload_prompt(graph, executor="comfyui:d")
    await wait_until(lambda: "progress" in relay.server.types(prompt_id), "progress", 30)
    return prompt_id


async def test_a_dropped_websocket_is_opened_again_and_the_prompt_finishes(relay):
    prompt_id = await running_on_d(relay, 3)
    connector = relay.relay.executors["comfyui"]._connectors["d"]
    await connector.client._ws.close()  # fault injection: the connection drops mid-run
    record = await relay.finish(prompt_id, timeout=60)
    assert record.status == "success", record.error
    assert relay.server.types(prompt_id).count("execution_success") == 1
    (files,) = record.outputs.values()
    assert (relay.output / files[0].subfolder / files[0].filename).is_file()


async def test_a_server_that_restarts_has_lost_the_prompt_and_says_so(relay, server_d):
    prompt_id = await running_on_d(relay, 30)
    server_d.stop()
    server_d.start(timeout=180)  # the same port: reachable again, with an empty history
    record = await relay.finish(prompt_id, timeout=60)
    assert record.status == "error" and record.error.type == "prompt_lost", record.error
    assert "'d'" in record.error.message and "restarted" in record.error.message
    assert relay.server.types(prompt_id).count("execution_error") == 1


async def test_stopping_a_prompt_the_server_no_longer_knows_is_not_an_error(relay):
    """After a restart of either side, the server may not know the prompt any more: there is
    nothing left to stop, so Stop succeeds (following the prompt ends it as lost)."""
    executor = relay.relay.executors["comfyui"]
    record = JobRecord(prompt_id=str(uuid.uuid4()), executor="comfyui:d", job_id=str(uuid.uuid4()))
    assert await executor.cancel(record) == "stopped"


async def test_this_comfyui_restarted_mid_prompt_follows_it_again_and_saves_once(
    tmp_path, server_d
):
    """The relay side stops while its prompt runs on D, and starts again from the same
    folder (its records, its client id on D): it follows the prompt again, live, and saves
    its output once."""
    env = {"PARALLEL_RUNS_COMFYUI_SERVERS": f"d={server_d.url}"}
    async with offload_app(tmp_path / "a", env) as first:
        graph = slow_note_graph(seconds=4, steps=16)
        prompt_id = await first.offload_prompt(graph, executor="comfyui:d")
        await wait_until(lambda: "progress" in first.server.types(prompt_id), "progress", 30)
    async with offload_app(tmp_path / "a", env) as again:  # the same folder, a new relay
        assert again.relay.following() == [prompt_id]
        record = await again.finish(prompt_id, timeout=60)
        assert record.status == "success", record.error
        progress = [d for e, d in again.server.of(prompt_id) if e == "progress"]
        assert progress, "followed live again, not only collected at the end"
    saved = list((tmp_path / "a" / "output" / "parallel-runs" / prompt_id).iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".png"


async def test_a_server_gone_for_good_ends_the_prompt_naming_it(relay, server_d):
    prompt_id = await running_on_d(relay, 30)
    server_d.stop()  # for good: the last test of the module
    record = await relay.finish(prompt_id, timeout=60)
    assert record.status == "error" and record.error.type == "server_gone", record.error
    assert "'d'" in record.error.message
    (error,) = [d for e, d in relay.server.of(prompt_id) if e == "execution_error"]
    assert error["exception_message"] == record.error.message
