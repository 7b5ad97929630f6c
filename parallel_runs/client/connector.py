"""Run many prompts at once on one ComfyUI websocket and follow each one by its prompt id.

One reader task (owned here, cancelled on close) reads the socket and hands every event to the
run it belongs to; each run has its own event queue and a future for its result. Events without
a prompt id (legacy progress text, type-1 previews) belong to the prompt that is executing: a
server runs one prompt at a time. If the socket closes, every waiting run fails with
`ServerGone` instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capped_read import AnswerTooLarge
from ..convert.prompt_format import detect_format, to_prompt
from .comfy_client import ComfyClient, Event
from .errors import ComfyError, ConnectorError, PromptTimeout, ServerGone, ServerUnavailable
from .prompt_run import TERMINAL_EVENTS, OutputFile, PromptRun, RunResult, RunStatus, output_refs
from .uploads import Upload, remove_local, upload_file

HISTORY_WAIT = 10.0  # the server writes history just after the terminal event


@dataclass
class PromptHandle:
    """One queued prompt: its live state, its events, its result."""

    connector: Connector
    run: PromptRun
    ephemeral: bool = False
    _events: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    _result: asyncio.Future[RunResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def prompt_id(self) -> str:
        return self.run.prompt_id

    @property
    def done(self) -> bool:
        return self._result.done()

    async def events(self) -> AsyncIterator[Event]:
        """This prompt's events as they arrive, until its result is settled."""
        while (event := await self.next_event()) is not None:
            yield event

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event of this prompt, or None once its result is settled (and on every
        call after that). `asyncio.TimeoutError` when none comes within `timeout` seconds:
        a follower can do something while the prompt is quiet, then call again."""
        event = await asyncio.wait_for(self._events.get(), timeout)
        if event is None:
            self._events.put_nowait(None)  # the end stays the end for the next caller
        return event

    async def result(self, timeout: float | None = None, interrupt: bool = True) -> RunResult:
        """The result whatever the outcome (check `status`). On timeout the prompt is
        interrupted (or dequeued) unless `interrupt=False`, then `PromptTimeout` is raised."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), timeout)
        except asyncio.TimeoutError:
            action = "left it running"
            if interrupt:
                try:
                    await self.cancel()
                    action = "cancelled it"
                except ConnectorError as error:
                    action = f"could not cancel it: {error}"
            raise PromptTimeout(
                f"prompt {self.prompt_id} did not finish within {timeout:g} s ({action})"
            ) from None

    async def wait(self, timeout: float | None = None, interrupt: bool = True) -> RunResult:
        """The result of a successful prompt; raises `PromptFailed`/`PromptInterrupted`."""
        return (await self.result(timeout, interrupt)).raise_for_status()

    async def cancel(self) -> None:
        await self.connector.cancel(self.prompt_id)

    def _push(self, event: Event | None) -> None:
        self._events.put_nowait(event)

    def _settle(self, result: RunResult | None = None, error: BaseException | None = None) -> None:
        if self._result.done():
            return
        if error is not None:
            self._result.set_exception(error)
            self._result.exception()  # a caller that never awaits must not warn at exit
        else:
            self._result.set_result(result)
        self._push(None)


@dataclass
class Connector:
    """A connection to one ComfyUI server. `input_dir` is the server's input directory when
    it runs on this machine: only then can ephemeral uploads be removed (see `uploads`).
    `connect_wait` is how long `open()` keeps trying a server that does not answer yet."""

    url: str
    input_dir: Path | None = None
    output_types: tuple[str, ...] = ("output",)
    connect_wait: float = 0.0
    max_file_bytes: int | None = None  # an output file larger than this is not fetched
    client: ComfyClient | None = None
    _runs: dict[str, PromptHandle] = field(default_factory=dict)
    _uploads: list[Upload] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _executing: str | None = None
    _gone: ConnectorError | None = None
    _object_info: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.client = self.client or ComfyClient(self.url)

    async def __aenter__(self) -> Connector:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Clean up, then close. A failing clean-up never hides the error already raised."""
        try:
            if self._gone is None:
                await self.cleanup()
        except ConnectorError:
            if exc_type is None:
                raise
        finally:
            await self.close()

    @property
    def alive(self) -> bool:
        """Open, and its websocket still reading."""
        return self._reader is not None and not self._reader.done() and self._gone is None

    async def open(self) -> None:
        await self.client.connect(self.connect_wait)
        self._gone = None
        self._reader = asyncio.create_task(self._read(), name=f"comfy-reader {self.url}")

    async def close(self) -> None:
        """Stop reading; runs still waiting fail with a ConnectorError."""
        tasks = [t for t in (self._reader, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._reader = None
        self._fail_waiting(ConnectorError("the connector was closed"))
        await self.client.close()

    # Running

    async def prepare(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """An API prompt from an API prompt or a UI workflow (converted via /object_info)."""
        if detect_format(document) == "ui" and self._object_info is None:
            self._object_info = await self.client.object_info()
        return to_prompt(document, self._object_info)

    async def submit(
        self,
        document: Mapping[str, Any],
        extra_data: Mapping[str, Any] | None = None,
        ephemeral: bool = False,
    ) -> PromptHandle:
        """Queue a prompt (or UI workflow) for this connection. `ephemeral` runs have their
        history deleted by `cleanup()`. Raises `PromptRejected` if validation fails."""
        self._check_alive()
        prompt = await self.prepare(document)
        prompt_id = str(uuid.uuid4())
        handle = PromptHandle(self, PromptRun(prompt_id, prompt), ephemeral=ephemeral)
        self._runs[prompt_id] = handle  # before queueing: its first events may come first
        try:
            await self.client.queue(prompt, extra_data, prompt_id=prompt_id)
        except BaseException:
            del self._runs[prompt_id]
            raise
        return handle

    async def attach(self, prompt_id: str, prompt: Mapping[str, Any]) -> PromptHandle:
        """Follow a prompt queued earlier with this connection's client id (by this process
        or one before it): from the server's queue and history, then from its events.
        ComfyError(404) when the server knows nothing of it (it was restarted, or the
        prompt's history was deleted)."""
        self._check_alive()
        handle = self._runs.get(prompt_id)
        if handle is not None:
            return handle
        handle = PromptHandle(self, PromptRun(prompt_id, dict(prompt)))
        self._runs[prompt_id] = handle  # before looking: events may come meanwhile
        running, pending = await self.client.queue_ids()
        if prompt_id in running:
            handle.run.status = RunStatus.RUNNING
            self._executing = prompt_id
        elif prompt_id not in pending:
            history = await self.client.history(prompt_id)
            if history is None:
                del self._runs[prompt_id]
                raise ComfyError(404, f"ComfyUI at {self.url} does not know prompt {prompt_id}")
            handle.run.finish(_status_of(history), _error_of(history))
            self._spawn(self._finalize(handle))
        return handle

    async def run(
        self, document: Mapping[str, Any], timeout: float | None = None, **options: Any
    ) -> RunResult:
        """Submit and wait for success (raises on error, interruption, timeout)."""
        handle = await self.submit(document, **options)
        return await handle.wait(timeout)

    async def cancel(self, prompt_id: str) -> None:
        """Interrupt a running prompt, or take a pending one off the queue."""
        handle = self._runs.get(prompt_id)
        if handle is None:
            raise ConnectorError(f"prompt {prompt_id} was not queued through this connector")
        if handle.run.finished:
            return
        if handle.run.status == RunStatus.RUNNING:
            await self.client.interrupt(prompt_id)
            return
        await self.client.delete_queued([prompt_id])
        running, pending = await self.client.queue_ids()
        if prompt_id in running:
            await self.client.interrupt(prompt_id)
        elif prompt_id not in pending and await self.client.history(prompt_id) is None:
            handle.run.finish(RunStatus.INTERRUPTED, {"message": "was removed from the queue"})
            handle._settle(self._result_of(handle.run, None, []))

    # Uploads and clean-up

    async def upload(
        self,
        source: Path | bytes,
        filename: str | None = None,
        subfolder: str = "",
        overwrite: bool = False,
        ephemeral: bool = False,
        kind: str = "input",
    ) -> Upload:
        """Upload an input file; ephemeral ones get a unique name and go in `cleanup()`."""
        self._check_alive()
        upload = await upload_file(
            self.client, source, filename, subfolder, overwrite, ephemeral, kind
        )
        if ephemeral:
            self._uploads.append(upload)
        return upload

    async def cleanup(self) -> list[str]:
        """Delete the history of finished ephemeral runs and, on a local server, the
        ephemeral uploads; forget every finished run. Returns what stays, as readable notes."""
        notes: list[str] = []
        finished = [p for p, h in self._runs.items() if h.done]
        ephemeral = [p for p in finished if self._runs[p].ephemeral]
        if ephemeral:
            await self.client.delete_history(ephemeral)
        for prompt_id in finished:
            del self._runs[prompt_id]
        for upload in list(self._uploads):
            if self.input_dir is None:
                notes.append(f"{upload.reference} stays on the server (no delete route)")
                continue
            remove_local(upload, self.input_dir)
            self._uploads.remove(upload)
        return notes

    # The reader

    async def _read(self) -> None:
        reason = "closed the connection"
        try:
            async for event in self.client.events():
                self.dispatch(event)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # any socket failure ends every waiting run the same way
            reason = f"broke the connection ({error or type(error).__name__})"
        self._gone = ServerGone(f"ComfyUI at {self.url} {reason}")
        self._fail_waiting(self._gone)

    def dispatch(self, event: Event) -> None:
        """Hand one event to the run it belongs to (the reader calls this for every event)."""
        data = event.data if isinstance(event.data, Mapping) else {}
        prompt_id = data.get("prompt_id")
        if event.type == "execution_start":
            self._executing = prompt_id
        if prompt_id is None and event.type in ("progress_text", "preview", "progress"):
            prompt_id = self._executing
        if event.type in TERMINAL_EVENTS and prompt_id == self._executing:
            self._executing = None
        handle = self._runs.get(str(prompt_id)) if prompt_id is not None else None
        if handle is None or handle.done:
            return
        handle._push(event)
        if handle.run.apply(event):
            self._spawn(self._finalize(handle))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finalize(self, handle: PromptHandle) -> None:
        """Fetch the history entry and the output files, then settle the result. A file the
        server refuses to serve is listed in `missing`; the others are still fetched."""
        try:
            history = await self._history_when_written(handle.prompt_id)
            outputs = (history or {}).get("outputs") or handle.run.outputs
            files, missing = await self._fetch(output_refs(outputs, self.output_types))
            handle._settle(self._result_of(handle.run, history, files, outputs, missing))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            handle._settle(error=error)

    async def _fetch(self, refs: list[tuple[str, dict]]) -> tuple[list[OutputFile], list[str]]:
        files: list[OutputFile] = []
        missing: list[str] = []
        for node_id, ref in refs:
            name, subfolder = ref["filename"], ref.get("subfolder") or ""
            kind = ref.get("type") or "output"
            try:
                data = await self.client.view(name, subfolder, kind, self.max_file_bytes)
            except (ComfyError, AnswerTooLarge) as error:
                missing.append(f"node {node_id}: {name} could not be fetched ({error})")
                continue
            files.append(OutputFile(node_id, name, subfolder, kind, data))
        return files, missing

    async def _history_when_written(self, prompt_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + HISTORY_WAIT
        while True:
            entry = await self.client.history(prompt_id)
            if entry is not None or time.monotonic() > deadline:
                return entry
            await asyncio.sleep(0.05)

    @staticmethod
    def _result_of(
        run: PromptRun,
        history: dict[str, Any] | None,
        files: list[OutputFile],
        outputs: Mapping[str, Any] | None = None,
        missing: list[str] | None = None,
    ) -> RunResult:
        end = run.finished_at or time.monotonic()
        return RunResult(
            prompt_id=run.prompt_id,
            status=run.status,
            history=history,
            outputs=dict(outputs if outputs is not None else run.outputs),
            files=files,
            error=run.error,
            elapsed=end - run.queued_at,
            missing=list(missing or []),
        )

    def _fail_waiting(self, error: ConnectorError) -> None:
        for prompt_id, handle in self._runs.items():
            if not handle.done:
                state = "running" if handle.run.status == RunStatus.RUNNING else "queued"
                handle._settle(error=type(error)(f"{error}; prompt {prompt_id} was {state}"))

    def _check_alive(self) -> None:
        if self._gone is not None:
            raise self._gone
        if self._reader is None:
            raise ServerUnavailable(f"not connected to {self.url} (call open() first)")


def _status_of(history: Mapping[str, Any]) -> RunStatus:
    """How a prompt ended, from its history entry (`status.status_str` and messages)."""
    status = history.get("status") or {}
    messages = [m[0] for m in status.get("messages") or [] if isinstance(m, list) and m]
    if "execution_interrupted" in messages:
        return RunStatus.INTERRUPTED
    if status.get("status_str") == "error" or "execution_error" in messages:
        return RunStatus.ERROR
    return RunStatus.SUCCESS


def _error_of(history: Mapping[str, Any]) -> dict[str, Any] | None:
    """The data of the error or interruption a history entry recorded, if any."""
    for message in (history.get("status") or {}).get("messages") or []:
        ended = isinstance(message, list) and len(message) == 2
        if ended and message[0] in ("execution_error", "execution_interrupted"):
            return dict(message[1]) if isinstance(message[1], Mapping) else None
    return None
