"""Start, watch and stop a ComfyUI server process, or attach to one that already runs.

Used by the test fixtures, the CLI and the dev start script. Blocking by design (process
management is synchronous); async callers wrap it with `asyncio.to_thread`.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServerState(str, enum.Enum):
    UNINIT = "uninit"
    INITIALIZING = "initializing"
    READY = "ready"
    ERROR = "error"
    KILLED = "killed"


class ComfyStartError(RuntimeError):
    """ComfyUI did not become ready; the message carries the end of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


def is_ready(url: str, timeout: float = 2.0) -> bool:
    """True once the server answers its cheapest JSON route."""
    try:
        with urllib.request.urlopen(f"{url}/system_stats", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class ComfyProcess:
    """One ComfyUI server we own. `command=None` builds the usual CPU, loopback command line."""

    comfy_dir: Path | None = None
    base_directory: Path | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    python: str = sys.executable
    extra_args: Sequence[str] = ()
    command: Sequence[str] | None = None
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    log_path: Path | None = None
    state: ServerState = ServerState.UNINIT
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def build_command(self) -> list[str]:
        if self.command is not None:
            return [str(part) for part in self.command]
        if self.comfy_dir is None:
            raise ValueError("either comfy_dir or command is required")
        args = [
            self.python,
            str(Path(self.comfy_dir) / "main.py"),
            "--cpu",
            "--listen",
            self.host,
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--database-url",
            "sqlite:///:memory:",
        ]
        if self.base_directory is not None:
            args += ["--base-directory", str(self.base_directory)]
        return args + [str(arg) for arg in self.extra_args]

    def start(self, timeout: float = 120.0) -> ComfyProcess:
        """Launch and wait until ready; idempotent while running."""
        if self.state in (ServerState.READY, ServerState.INITIALIZING):
            return self
        if self.port is None:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            self.state = ServerState.ERROR
            raise ComfyStartError(f"port {self.port} on {self.host} is already taken")
        self.log_path = self.log_path or Path(self.base_directory or ".") / "comfyui.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.state = ServerState.INITIALIZING
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.build_command(),
                cwd=self.cwd or self.comfy_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
            )
        atexit.register(self.stop)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self.state = ServerState.ERROR
                raise ComfyStartError(
                    f"ComfyUI exited with {self._proc.returncode} before it was ready:\n"
                    + tail(self.log_path)
                )
            if is_ready(self.url):
                self.state = ServerState.READY
                return
            time.sleep(0.2)
        self.stop()
        self.state = ServerState.ERROR
        raise ComfyStartError(f"ComfyUI not ready after {timeout:.0f} s:\n" + tail(self.log_path))

    def poll(self) -> ServerState:
        """Refresh the state from the process (a server can die while we look away)."""
        if self.state == ServerState.READY and self._proc and self._proc.poll() is not None:
            self.state = ServerState.ERROR
        return self.state

    def stop(self, grace: float = 10.0) -> None:
        """Terminate, then kill the whole process group; safe to call any number of times."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if self.state != ServerState.ERROR:
            self.state = ServerState.KILLED
        atexit.unregister(self.stop)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


@dataclass(frozen=True)
class AttachedServer:
    """A server someone else runs: same `url`/`state` surface, nothing to stop."""

    url: str

    @property
    def state(self) -> ServerState:
        return ServerState.READY if is_ready(self.url) else ServerState.ERROR
