"""Server lifecycle with servers of our own (these tests stop and kill them): states,
idempotent start/stop, a taken port, and a server that dies while a prompt waits.

Servers that a test uses but whose start it does not check (the one killed mid-prompt, the
CLI's under SIGTERM) start in the background ahead of their tests (`early_fixture`): their
start-ups overlap with earlier tests, and with the tests that start, and check, their own."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from early_servers import Early, early_fixture
from PIL import Image

from conftest import find_comfyui, make_base_directory, start_comfy
from parallel_runs_node.parallel_runs.cli import main
from parallel_runs_node.parallel_runs.client import process as comfy_process
from parallel_runs_node.parallel_runs.client.connector import Connector
from parallel_runs_node.parallel_runs.client.errors import ServerGone, ServerUnavailable
from parallel_runs_node.parallel_runs.client.process import (
    AttachedServer,
    ComfyProcess,
    ComfyStartError,
    ServerState,
    is_ready,
)

pytestmark = pytest.mark.comfy


def slow_graph(seconds: float) -> dict:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        },
        "2": {
            "class_type": "ParallelRunsSlowPassthrough",
            "inputs": {"image": ["1", 0], "seconds": seconds, "steps": 20},
        },
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def cli_until_sigterm(base: Path, workflow: Path) -> subprocess.Popen[str]:
    """`parallel_runs run --start` of a slow workflow in a subprocess (stopped by the test)."""
    make_base_directory(base)  # with this package: the slow node
    workflow.write_text(json.dumps(slow_graph(seconds=900)))  # interrupted long before
    command = [sys.executable, "-m", "parallel_runs", "run", str(workflow), "--start",
               "--comfy-dir", str(find_comfyui()), "--base-directory", str(base)]  # fmt: skip
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True)


@early_fixture(scope="function")
@contextlib.contextmanager
def killed(early: Early) -> Iterator[ComfyProcess]:
    """The server test_server_killed_mid_prompt kills."""
    server = start_comfy(early.path)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Cli:
    process: subprocess.Popen[str]
    base: Path


@early_fixture(scope="function")
@contextlib.contextmanager
def cli_until_stopped(early: Early) -> Iterator[Cli]:
    """The CLI test_cli_on_sigterm stops."""
    started = Cli(cli_until_sigterm(early.path / "base", early.path / "slow.json"),
                  early.path / "base")  # fmt: skip
    try:
        yield started
    finally:
        if started.process.poll() is None:  # its test failed early
            started.process.send_signal(signal.SIGTERM)  # the CLI stops its server too
            try:
                started.process.wait(60)
            except subprocess.TimeoutExpired:
                started.process.kill()
                started.process.wait()


def test_start_stop_states_and_idempotence(tmp_path):
    server = ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=make_base_directory(tmp_path),
        python=sys.executable,
        log_path=tmp_path / "comfyui.log",
    )
    assert server.state == ServerState.UNINIT
    server.stop()  # stopping what never started does nothing
    assert server.state == ServerState.UNINIT
    try:
        server.start(timeout=180)
        pid = server.pid
        assert server.state == ServerState.READY and is_ready(server.url)
        assert server.start() is server and server.pid == pid  # no second process
        assert server.poll() == ServerState.READY
        assert AttachedServer(server.url).state == ServerState.READY
        assert server.input_directory == tmp_path / "input"
    finally:
        server.stop()
    assert server.state == ServerState.KILLED
    assert not is_ready(server.url)
    server.stop()
    assert server.state == ServerState.KILLED and server.pid is None
    assert AttachedServer(server.url).state == ServerState.ERROR
    assert "To see the GUI go to" in server.log_text()


def test_port_already_taken_is_refused_up_front(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        server = ComfyProcess(comfy_dir=find_comfyui(), base_directory=tmp_path, port=port)
        with pytest.raises(ComfyStartError, match=f"port {port} on 127.0.0.1 is already taken"):
            server.start(timeout=30)
    assert server.state == ServerState.ERROR and server.pid is None


def test_port_taken_after_the_check_by_another_comfyui(comfy_server, tmp_path, monkeypatch):
    """The port is free when checked, then another server holds it: that one answers on our
    URL, but it is not ours, and ours fails to bind; the error says so."""
    monkeypatch.setattr(comfy_process, "port_in_use", lambda host, port: False)
    server = ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=make_base_directory(tmp_path),
        port=int(comfy_server.url.rsplit(":", 1)[1]),
        python=sys.executable,
    )
    with pytest.raises(ComfyStartError, match="already taken \\(ComfyUI could not bind it\\)"):
        server.start(timeout=180)
    assert server.state == ServerState.ERROR
    assert is_ready(comfy_server.url)  # the other server is untouched


async def test_server_killed_mid_prompt_fails_the_waiting_run(killed):
    server = killed  # started ahead of the test
    try:
        async with Connector(server.url) as connector:
            running = await connector.submit(slow_graph(seconds=60))
            queued = await connector.submit(slow_graph(seconds=61))
            while "2" not in running.run.nodes:  # it is executing our slow node
                await asyncio.sleep(0.05)
            os.kill(server.pid, signal.SIGKILL)
            with pytest.raises(ServerGone) as caught:
                await running.result(timeout=30)
            with pytest.raises(ServerGone, match="was queued"):
                await queued.result(timeout=30)
            with pytest.raises(ServerGone):
                await connector.submit(slow_graph(seconds=1))
        message = str(caught.value)
        assert message.startswith(f"ComfyUI at {server.url} closed the connection")
        assert message.endswith(f"prompt {running.prompt_id} was running")
        # The socket closes a moment before the kernel lets us reap the process.
        for _ in range(100):
            if server.poll() == ServerState.ERROR:
                break
            await asyncio.sleep(0.1)
        assert server.poll() == ServerState.ERROR
    finally:
        server.stop()
    assert server.state == ServerState.ERROR  # it died; stop() does not relabel that


async def test_unreachable_server_is_reported(tmp_path):
    url = f"http://127.0.0.1:{comfy_process.free_port()}"
    with pytest.raises(ServerUnavailable, match=f"cannot reach ComfyUI at {url}"):
        async with Connector(url):
            pass


def test_cli_starts_a_server_uploads_runs_cleans_up_and_stops(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 200, 30)).save(buffer, format="PNG")
    (tmp_path / "pic.png").write_bytes(buffer.getvalue())
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "c"}},
    }
    (tmp_path / "wf.json").write_text(json.dumps(workflow))
    base = tmp_path / "base"
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["run", str(tmp_path / "wf.json"), "--start", "--comfy-dir", str(find_comfyui()),
         "--base-directory", str(base), "--input", str(tmp_path / "pic.png"),
         "--out", str(tmp_path / "out")],
        out, err,
    )  # fmt: skip
    assert code == 0, err.getvalue()
    (saved,) = (tmp_path / "out").iterdir()
    assert Image.open(saved).convert("RGB").getpixel((0, 0)) == (10, 200, 30)
    assert list((base / "input").iterdir()) == []  # the ephemeral upload is gone
    assert "note:" not in err.getvalue()
    assert "To see the GUI go to" in (base / "comfyui.log").read_text()
    port = (base / "comfyui.log").read_text().split("127.0.0.1:")[-1].split()[0]
    assert not is_ready(f"http://127.0.0.1:{port}")  # and the server was stopped


def test_cli_on_sigterm_interrupts_its_prompt_and_stops_its_server(cli_until_stopped):
    base = cli_until_stopped.base  # `parallel_runs run --start` of a slow workflow, begun early
    with cli_until_stopped.process as cli:
        for line in cli.stderr:  # one progress line per update: wait for the slow node
            if "node 2 (ParallelRunsSlowPassthrough)" in line:
                break
        cli.send_signal(signal.SIGTERM)
        rest = cli.stderr.read()
        code = cli.wait(60)
    assert code == 130
    assert rest.splitlines()[-1] == "error: interrupted"
    log = (base / "comfyui.log").read_text()
    assert "Interrupting prompt" in log
    port = log.split("127.0.0.1:")[-1].split()[0]
    assert not is_ready(f"http://127.0.0.1:{port}")
