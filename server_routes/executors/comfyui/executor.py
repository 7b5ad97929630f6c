"""Another ComfyUI server as an executor: a stock ComfyUI, reached over HTTP and its websocket.

One `Connector` per server (one websocket for every prompt this ComfyUI runs there), with a
client id that stays the same across restarts of this ComfyUI: the remote sends a prompt's
events to the client id that queued it, so a restarted relay hears them again. Before queueing,
the remote's `/object_info` must list every node type and model file the prompt names; input
files go to the remote's temp folder (which ComfyUI empties when it starts). If the remote goes
away, it is tried again for `reconnect_for` seconds and the prompt caught up from its queue and
history; a remote that no longer knows the prompt (it restarted) ends it with that reason.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ....parallel_runs.client.comfy_client import ComfyClient
from ....parallel_runs.client.connector import Connector, PromptHandle
from ....parallel_runs.client.errors import (
    ComfyError,
    ConnectorError,
    PromptRejected,
    ServerUnavailable,
    describe_failure,
    describe_rejection,
)
from ....parallel_runs.client.prompt_run import RunResult, RunStatus
from ....parallel_runs.client.uploads import rewrite_inputs
from ..contract import (
    Accepted,
    CancelOutcome,
    ExecutorRefused,
    Failed,
    Finished,
    Health,
    PromptJob,
    Running,
    Stopped,
    Update,
    Waiting,
)
from ..inputs import InputFile, PromptInputError, input_files
from ..prompt_events import Event, RelayPreview
from ..records import JobRecord
from ..runpod.config import OffloadConfig
from .servers import SERVERS_ENV, ComfyServers

log = logging.getLogger(__name__)

KIND = "comfyui"
RECONNECT_FOR = 60.0  # seconds a server that went away is tried again
QUIET_CHECK = 5.0  # seconds without events after which the queue is looked at
MAX_FILE_BYTES = 100 * 1024 * 1024  # an output file larger than this is not fetched
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
PASSED_ON = ("executing", "progress", "progress_state", "execution_cached")


@dataclass(frozen=True)
class Prepared:
    prompt: dict[str, Any]
    uploads: list[InputFile]


def missing_on_server(
    prompt: Mapping[str, Any], info: Mapping[str, Any], uploaded: set[tuple[str, str]]
) -> list[str]:
    """What the server's /object_info lacks: node types, and model files its lists omit
    (inputs the prompt's own uploads fill are not checked)."""
    problems: list[str] = []
    for node_id, node in prompt.items():
        class_type = str(node.get("class_type", ""))
        spec = info.get(class_type)
        if spec is None:
            problems.append(f"node {node_id}: node type {class_type!r} is not installed")
            continue
        declared = {
            **spec.get("input", {}).get("required", {}),
            **spec.get("input", {}).get("optional", {}),
        }
        for name, value in (node.get("inputs") or {}).items():
            choices = declared.get(name, [None])[0]
            is_file = isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES)
            if (node_id, name) in uploaded or not is_file or not isinstance(choices, list):
                continue
            if value not in choices:
                problems.append(f"node {node_id} ({class_type}): model file {value!r} ({name})")
    return problems


def _preview(data: Mapping[str, Any]) -> RelayPreview | None:
    kind = data.get("image_type")
    if kind not in ("image/jpeg", "image/png") or not isinstance(data.get("image"), bytes):
        return None
    return RelayPreview(str(data.get("node") or ""), kind, data["image"])


def relayed_events(event_type: str, data: Mapping[str, Any], prompt_id: str) -> list[Event]:
    """The remote's event as the queuing client gets it, under the local prompt id; outputs
    and endings are not passed on (the relay sends them once the files are saved here)."""
    if event_type in PASSED_ON:
        if event_type == "executing" and data.get("node") is None:
            return []  # the remote's end marker: the relay sends its own after the ending
        return [(event_type, {**data, "prompt_id": prompt_id})]
    if event_type == "progress_text":
        node = str(data.get("node") or "")
        text = {"prompt_id": prompt_id, "node": node, "display_node": node}
        return [("parallel.progress_text", {**text, "text": str(data.get("text", ""))})]
    return []


def result_update(result: RunResult, server: str) -> Finished | Failed | Stopped:
    if result.status == RunStatus.SUCCESS:
        files = [
            {"filename": f.safe_name, "type": "bytes", "data": f.data, "node": f.node_id}
            for f in result.files
        ]
        return Finished("success", files, refused=list(result.missing))
    error = result.error or {}
    if result.status == RunStatus.INTERRUPTED:
        return Stopped(f"interrupted on ComfyUI server {server!r}")
    return Failed(
        str(error.get("exception_type") or "RemoteError"),
        f"on ComfyUI server {server!r}: {describe_failure(error)}",
        "error",
        node_id=str(error["node_id"]) if error.get("node_id") is not None else None,
        node_type=str(error["node_type"]) if error.get("node_type") else None,
    )


class ComfyuiExecutor:
    """Named ComfyUI servers behind the executor contract."""

    kind = KIND
    checks_local_nodes = False  # the remote's own /object_info is checked instead

    def __init__(
        self,
        servers: ComfyServers,
        access: OffloadConfig,
        client_id: Callable[[str], str],
        *,
        reconnect_for: float = RECONNECT_FOR,
        quiet_check: float = QUIET_CHECK,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.servers = servers
        self._access = access
        self._client_id = client_id  # server name -> this ComfyUI's stable client id there
        self._reconnect_for = reconnect_for
        self._quiet_check = quiet_check
        self._max_file_bytes = max_file_bytes
        self._connectors: dict[str, Connector] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._times: dict[str, deque[float]] = {}  # recent run times per server

    # ------------------------------------------------------------------ connections

    def _url(self, name: str) -> str:
        url = self.servers.url(name)
        if url is None:
            known = ", ".join(sorted(self.servers.all())) or "none configured"
            raise ExecutorRefused(
                400,
                "unknown_server",
                f"no ComfyUI server named {name!r} (known: {known})",
                "executor",
            )
        return url

    async def connector(self, name: str) -> Connector:
        """The open connection to a server, opened (again) when needed."""
        lock = self._opening.setdefault(name, asyncio.Lock())
        async with lock:
            current = self._connectors.get(name)
            if current is not None and current.alive:
                return current
            if current is not None:
                await current.close()
            url = self._url(name)
            headers = {}
            if (auth := self.servers.auth_header(name)) is not None:
                headers["Authorization"] = auth
            client = ComfyClient(
                url,
                client_id=self._client_id(name),
                headers=headers,
                timeout=self._access.remote_timeout,
            )
            connector = Connector(url, client=client, max_file_bytes=self._max_file_bytes)
            try:
                await connector.open()
            except ServerUnavailable as exc:
                raise ExecutorRefused(
                    502, "server_unreachable", f"ComfyUI server {name!r}: {exc}", "executor"
                ) from None
            self._connectors[name] = connector
            return connector

    async def close(self) -> None:
        for connector in self._connectors.values():
            await connector.close()
        self._connectors.clear()

    # ------------------------------------------------------------------ submit

    def configured(self) -> list[str]:
        return [f"{KIND}:{name}" for name in sorted(self.servers.all())]

    def resolve(self, name: str | None) -> str:
        if not self._access.allowed:
            raise ExecutorRefused(409, "offload_refused", self._access.allowed_detail())
        servers = self.servers.all()
        if name is None and len(servers) == 1:
            name = next(iter(servers))
        if name is None:
            raise ExecutorRefused(
                400,
                "no_server",
                "choose a ComfyUI server (executor 'comfyui:<name>'); configured: "
                + (", ".join(sorted(servers)) or f"none (set {SERVERS_ENV})"),
                "executor",
            )
        self._url(name)
        return f"{KIND}:{name}"

    async def prepare(self, executor: str, job: PromptJob) -> Prepared:
        name = executor.partition(":")[2]
        try:
            uploads = await asyncio.to_thread(input_files, job.prompt, job.folders)
        except PromptInputError as exc:
            field = f"prompt.{exc.node_id}.inputs"
            raise ExecutorRefused(400, "missing_input", str(exc), field) from None
        connector = await self.connector(name)
        try:
            info = await connector.client.object_info()
        except (ConnectorError, ServerUnavailable) as exc:
            message = f"ComfyUI server {name!r}: {exc}"
            raise ExecutorRefused(502, "server_unreachable", message) from None
        filled = {(u.node_id, u.input_name) for u in uploads}
        problems = missing_on_server(job.prompt, info, filled)
        if problems:
            raise ExecutorRefused(
                400,
                "missing_on_server",
                f"ComfyUI server {name!r} cannot run this prompt: " + "; ".join(problems[:20]),
                "prompt",
            )
        return Prepared(job.prompt, uploads)

    async def submit(self, record: JobRecord, prepared: Prepared) -> Accepted:
        name = record.target
        connector = await self.connector(name)
        try:
            names = await self._upload(connector, prepared.uploads)
        except ConnectorError as exc:  # nothing is queued yet
            message = f"ComfyUI server {name!r}: uploading the input files failed: {exc}"
            raise ExecutorRefused(502, "server_unreachable", message) from None
        try:
            handle = await connector.submit(rewrite_inputs(prepared.prompt, names))
        except PromptRejected as exc:
            lead = f"ComfyUI server {name!r} refused the prompt"
            message = describe_rejection(exc.error, exc.node_errors, lead)
            raise ExecutorRefused(400, "prompt_rejected", message, "prompt") from None
        except ConnectorError as exc:  # the prompt may have reached the server
            message = f"ComfyUI server {name!r}: {exc}; the prompt may run there unfollowed"
            raise ExecutorRefused(502, "server_unreachable", message, uncertain=True) from None
        return Accepted(handle.prompt_id, "queued")

    async def _upload(self, connector: Connector, uploads: list[InputFile]) -> dict[str, str]:
        """Each input file once, into the remote's temp folder; prompt value -> its name
        there. Temp: ComfyUI empties it when it starts, as no route deletes an input."""
        names: dict[str, str] = {}
        for upload in uploads:
            data = await asyncio.to_thread(upload.path.read_bytes)
            sent = await connector.upload(data, upload.path.name, ephemeral=True, kind="temp")
            names[upload.value] = sent.reference
        return names

    # ------------------------------------------------------------------ follow

    async def follow(self, record: JobRecord) -> AsyncIterator[Update]:
        name, prompt_id = record.target, record.job_id or ""
        started: float | None = None  # when it began to run there (its run time, for Auto)
        handle: PromptHandle | None = None
        running = record.status == "running"
        while True:
            if handle is None:
                try:
                    handle = await self._attach(name, prompt_id, record.node_types)
                except _Lost as lost:
                    yield Failed(lost.kind, lost.message)
                    return
                if handle.run.status == RunStatus.RUNNING and not running:
                    running, started = True, time.monotonic()
                    yield Running("running")
                elif not running:
                    yield Waiting("queued")
            try:
                event = await handle.next_event(self._quiet_check)
            except asyncio.TimeoutError:
                continue  # quiet (a long node): the websocket still watches
            if event is None:
                try:
                    result = await handle.result(interrupt=False)
                except ConnectorError:  # the server went away: find the prompt again
                    handle = None
                    continue
                if started is not None:
                    self._learn(name, time.monotonic() - started, result)
                yield result_update(result, name)
                return
            data = event.data if isinstance(event.data, Mapping) else {}
            if event.type == "execution_start" and not running:
                running, started = True, time.monotonic()
                yield Running("running")
            elif event.type == "preview" and (preview := _preview(data)) is not None:
                yield Running("running", [], preview)
            elif events := relayed_events(event.type, data, record.prompt_id):
                yield Running("running", events)

    async def _attach(self, name: str, prompt_id: str, prompt: Mapping[str, str]) -> PromptHandle:
        """The prompt's handle on a (re)opened connection; _Lost when the server stays away
        past `reconnect_for` or no longer knows the prompt."""
        deadline = time.monotonic() + self._reconnect_for
        delay = 0.5
        while True:
            try:
                connector = await self.connector(name)
                nodes = {node: {"class_type": kind} for node, kind in prompt.items()}
                return await connector.attach(prompt_id, nodes)
            except ComfyError as exc:
                if exc.status == 404:
                    raise _Lost(
                        "prompt_lost",
                        f"ComfyUI server {name!r} no longer knows this prompt (was it "
                        "restarted?); queue it again",
                    ) from None
                why = str(exc)
            except (ExecutorRefused, ConnectorError, ServerUnavailable) as exc:
                why = getattr(exc, "message", str(exc))
            if time.monotonic() + delay > deadline:
                raise _Lost(
                    "server_gone",
                    f"lost ComfyUI server {name!r} for {self._reconnect_for:.0f} s: {why}",
                )
            log.warning("[parallel-runs] ComfyUI server %r: %s; trying again", name, why)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _learn(self, name: str, seconds: float, result: RunResult) -> None:
        if result.status == RunStatus.SUCCESS:
            self._times.setdefault(name, deque(maxlen=10)).append(seconds)

    # ------------------------------------------------------------------ cancel, health

    async def cancel(self, record: JobRecord) -> CancelOutcome:
        connector = await self.connector(record.target)
        prompt_id = record.job_id or ""
        try:
            await connector.attach(prompt_id, {})
            await connector.cancel(prompt_id)
        except ComfyError as exc:
            if exc.status != 404:
                raise ExecutorRefused(502, "server_unreachable", str(exc)) from None
            # The server no longer knows the prompt (it restarted): nothing is left to stop,
            # and following it ends the prompt as lost.
            return "stopped"
        except ConnectorError as exc:
            raise ExecutorRefused(502, "server_unreachable", str(exc)) from None
        return "stopped"

    async def health(self, executor: str) -> Health:
        name = executor.partition(":")[2]
        try:
            connector = await self.connector(name)
            running, pending = await connector.client.queue_ids()
            stats = await connector.client.call_json("GET", "/system_stats")
        except (ExecutorRefused, ConnectorError, ServerUnavailable) as exc:
            return Health(executor, False, detail=getattr(exc, "message", str(exc)))
        devices = (stats or {}).get("devices") or [{}]
        recent = self._times.get(name)
        per_prompt = statistics.median(recent) if recent else None
        detail = str(devices[0].get("name") or "")
        return Health(executor, True, len(pending), len(running), None, per_prompt, detail=detail)


class _Lost(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message
