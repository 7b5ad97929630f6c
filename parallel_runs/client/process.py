"""Start, watch and stop a ComfyUI server process, or attach to one that already runs.

Used by the test fixtures, the CLI and the dev start script. Blocking by design (process
management is synchronous); async callers wrap it with `asyncio.to_thread`.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import json
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


def server_argv(url: str, timeout: float = 2.0) -> list[str] | None:
    """The command line a ComfyUI server reports in /system_stats (None if it does not say)."""
    try:
        with urllib.request.urlopen(f"{url}/system_stats", timeout=timeout) as response:
            argv = json.loads(response.read()).get("system", {}).get("argv")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return [str(arg) for arg in argv] if isinstance(argv, list) else None


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
    _log_offset: int = field(default=0, repr=False)

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
            str(Path(self.comfy_dir).resolve() / "main.py"),  # absolute: cwd is comfy_dir
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
            args += ["--base-directory", str(Path(self.base_directory).resolve())]
        return args + [str(arg) for arg in self.extra_args]

    @property
    def input_directory(self) -> Path | None:
        """Where this server keeps uploaded inputs (None when a custom command hides it)."""
        args = [str(arg) for arg in self.extra_args]
        if "--input-directory" in args[:-1]:
            return Path(args[args.index("--input-directory") + 1])
        if self.command is not None:
            return None
        root = self.base_directory or self.comfy_dir
        return Path(root) / "input" if root is not None else None

    def start(self, timeout: float = 120.0) -> ComfyProcess:
        """Launch and wait until ready; idempotent while running or starting."""
        if self.state in (ServerState.READY, ServerState.INITIALIZING):
            return self
        if self.port is None:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            self.state = ServerState.ERROR
            raise ComfyStartError(f"port {self.port} on {self.host} is already taken")
        if self.base_directory is not None:  # ComfyUI cannot start without it
            (Path(self.base_directory) / "custom_nodes").mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_path or Path(self.base_directory or ".") / "comfyui.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.state = ServerState.INITIALIZING
        command = self.build_command()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                cwd=self.cwd or self.comfy_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            self.state = ServerState.ERROR
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll until our own process answers. Another server answering on the same port
        (someone took it between our check and ComfyUI's bind) does not count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                self.state = ServerState.ERROR
                raise ComfyStartError(self._exit_message())
            if is_ready(self.url) and self._answers_as_us():
                self.state = ServerState.READY
                return
            time.sleep(0.2)
        raise ComfyStartError(f"ComfyUI not ready after {timeout:.0f} s:\n" + self._new_log())

    def _answers_as_us(self) -> bool:
        """True when the server on our port runs our command line (or we cannot tell)."""
        if self.command is not None:
            return True
        argv = server_argv(self.url)
        return argv is None or argv == self.build_command()[1:]

    def _exit_message(self) -> str:
        log = self._new_log()
        if "address already in use" in log.lower() or "errno 98" in log.lower():
            return f"port {self.port} on {self.host} is already taken (ComfyUI could not bind it)"
        code = self._proc.returncode if self._proc is not None else "?"
        last = next((line for line in reversed(log.splitlines()) if line.strip()), "no output")
        return f"ComfyUI exited with {code} before it was ready: {last.strip()}\n{log}"

    def _new_log(self, lines: int = 40) -> str:
        """The end of what this start wrote to the log (not earlier runs appended to it)."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def poll(self) -> ServerState:
        """Refresh the state from the process (a server can die while we look away)."""
        alive = (ServerState.READY, ServerState.INITIALIZING)
        if self.state in alive and self._proc and self._proc.poll() is not None:
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
    """A server someone else runs: same `url`/`state`/`stop` surface; stopping does nothing.
    `input_directory` is set only when the caller knows the server is local."""

    url: str
    input_directory: Path | None = None

    @property
    def state(self) -> ServerState:
        return ServerState.READY if is_ready(self.url) else ServerState.ERROR

    def poll(self) -> ServerState:
        return self.state

    def stop(self, grace: float = 10.0) -> None:
        """Not ours to stop."""
