"""Relay prompts that run on other executors into ComfyUI as if they ran here.

One asyncio task per prompt reads its executor's updates (`contract.Update`) and turns them
into ComfyUI's own websocket events for the queuing client, under the local prompt id; it
records every status change in the job registry, so a restarted ComfyUI follows the prompt
again, and on success saves the result files into the output folder (whether or not a browser
listens). How a prompt ends is `endings`. Nothing here knows which kind of executor runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..clients import connected_clients
from .contract import (
    FINAL,
    Executor,
    ExecutorRefused,
    Failed,
    Finished,
    Running,
    Stopped,
    Trouble,
    Update,
    Waiting,
)
from .endings import JobEndings
from .outputs import OutputSaver
from .prompt_events import (
    PREVIEW_FLAG,
    PREVIEW_IMAGE,
    PREVIEW_IMAGE_WITH_METADATA,
    Event,
    PromptEvents,
    RelayPreview,
)
from .records import JobRecord
from .registry import JobRegistry

log = logging.getLogger(__name__)

# PromptServer.send_sync: (event name | binary event type, JSON data | payload, client id)
Send = Callable[[Any, Any, "str | None"], None]
# client id (None: everyone) -> {connected client id: its websocket feature flags}
Recipients = Callable[["str | None"], Mapping[str, Mapping[str, Any]]]


class StillSubmitting(RuntimeError):
    """Cancel arrived before the executor returned the job id."""


def server_recipients(server: Any) -> Recipients:
    """Who gets a message for `sid` on a PromptServer, with the feature flags each client
    announced on its websocket (previews are encoded per client, as ComfyUI does)."""
    return functools.partial(connected_clients, server)


def _nobody(_sid: str | None) -> dict[str, Mapping[str, Any]]:
    return {}


@dataclass
class _Follow:
    record: JobRecord
    events: PromptEvents
    task: asyncio.Task[None] | None = None
    finishing: bool = False  # the executor reported the end: a cancel comes too late


class Relay:
    """Owns the follow tasks; `close()` cancels them (records stay active for a resume)."""

    def __init__(
        self,
        registry: JobRegistry,
        saver: OutputSaver,
        send: Send,
        executors: Mapping[str, Executor],
        *,
        recipients: Recipients | None = None,
    ) -> None:
        self.registry = registry
        self.saver = saver
        self.executors = dict(executors)  # by kind
        self.endings = JobEndings(registry, saver, self._emit, self.announce)
        self._send = send
        self._recipients = recipients or _nobody  # no clients given: JSON events only
        self._follows: dict[str, _Follow] = {}

    def executor_for(self, record: JobRecord) -> Executor:
        executor = self.executors.get(record.kind)
        if executor is None:
            raise ExecutorRefused(400, "unknown_executor", f"no executor kind {record.kind!r}")
        return executor

    # ------------------------------------------------------------------ events

    def _emit(self, record: JobRecord, events: list[Event]) -> None:
        for event, data in events:
            self._send(event, data, record.client_id)

    def announce(self, record: JobRecord) -> None:
        """`parallel.job`: the package's own status event for a prompt run elsewhere."""
        data: dict[str, Any] = {
            "prompt_id": record.prompt_id,
            "status": record.status,
            "executor": record.executor,
            "remote_status": record.remote_status,
        }
        if record.error is not None:
            data["error"] = record.error.model_dump()
        if record.active:
            data["warning"] = record.warning  # None clears an earlier one
        self._send("parallel.job", data, record.client_id)

    async def _emit_preview(self, record: JobRecord, preview: RelayPreview) -> None:
        """A remote preview to the prompt's client, in the layout each one negotiated:
        type 4 (with prompt and node) for `supports_preview_metadata`, else legacy type 1."""
        recipients = self._recipients(record.client_id)
        if not recipients:
            return
        # decoding proves the remote side sent a real image; ComfyUI's type-4 path also wants
        # a PIL image (it encodes previews itself), the legacy one takes the bytes as they are
        picture = await asyncio.to_thread(preview.picture)
        if picture is None:
            return
        for sid, flags in recipients.items():
            if flags.get(PREVIEW_FLAG) is True:
                image = (preview.format, picture, None)
                metadata = preview.metadata(record.prompt_id)
                self._send(PREVIEW_IMAGE_WITH_METADATA, (image, metadata), sid)
            else:
                self._send(PREVIEW_IMAGE, preview.legacy_payload(), sid)

    # ------------------------------------------------------------------ lifecycle

    async def submit(self, record: JobRecord, prepared: Any) -> JobRecord:
        """Register, submit, start following. A refusal leaves no record behind, unless the
        job may have reached the executor (then the record says so)."""
        executor = self.executor_for(record)
        self.registry.add(record)
        try:
            await self.registry.saved()  # on disk before credit is spent: a crash is then seen
            accepted = await executor.submit(record, prepared)
        except ExecutorRefused as exc:
            if exc.uncertain:
                await self.endings.fail(record, "submit_uncertain", exc.message)
            else:
                self.registry.remove(record.prompt_id)
            raise
        except BaseException:
            self.registry.remove(record.prompt_id)
            raise
        record = self.registry.update(  # the one mapping a restart cannot do without
            record.prompt_id,
            durable=True,
            job_id=accepted.job_id,
            remote_status=accepted.remote_status,
        )
        self.announce(record)
        self.follow(record)
        return record

    def follow(self, record: JobRecord) -> None:
        if record.prompt_id in self._follows:
            return
        events = PromptEvents(record.prompt_id, record.node_types)
        events.started = record.status == "running"  # resumed: the UI already saw it start
        follow = _Follow(record, events)
        self._follows[record.prompt_id] = follow
        follow.task = asyncio.get_running_loop().create_task(
            self._run(follow), name=f"parallel-runs-relay-{record.prompt_id}"
        )

    async def resume(self) -> int:
        """Follow again what the registry says is still queued/running; returns how many."""
        count = 0
        for record in self.registry.load():
            if record.job_id is None:
                await self.endings.fail(
                    record,
                    "submit_interrupted",
                    f"ComfyUI stopped while submitting this prompt to {record.executor}; "
                    "it may have run there without being followed",
                )
                continue
            self.follow(record)
            count += 1
        return count

    async def close(self) -> None:
        tasks = [f.task for f in self._follows.values() if f.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._follows.clear()
        self.registry.flush()

    async def wait(self, prompt_id: str) -> JobRecord | None:
        """Until the prompt's follow task ends (tests and benchmarks)."""
        follow = self._follows.get(prompt_id)
        if follow is not None and follow.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(follow.task)
        return self.registry.get(prompt_id)

    def following(self) -> list[str]:
        return list(self._follows)

    # ------------------------------------------------------------------ cancel

    async def cancel(self, prompt_id: str) -> JobRecord:
        """Ask the executor to cancel, then report the prompt interrupted (unless it just
        finished). Raises KeyError, StillSubmitting or ExecutorRefused."""
        record = self.registry.get(prompt_id)
        if record is None:
            raise KeyError(prompt_id)
        if not record.active:
            return record
        if record.job_id is None:
            raise StillSubmitting(prompt_id)
        outcome = await self.executor_for(record).cancel(record)
        # while the executor answered, the job may have ended (the follower, a second cancel)
        record = self.registry.get(prompt_id) or record
        follow = self._follows.get(prompt_id)
        if not record.active or (follow is not None and follow.finishing):
            return record
        if outcome == "finishing":
            return record  # it completed: the follower collects the result
        if follow is not None and follow.task is not None:
            follow.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow.task
        if self._follows.get(prompt_id) is follow:
            self._follows.pop(prompt_id, None)
        events = follow.events if follow else PromptEvents(prompt_id, record.node_types)
        # ends the prompt only if nothing else did meanwhile: one execution_interrupted
        return await self.endings.interrupted(record, events, "cancelled from ComfyUI")

    # ------------------------------------------------------------------ following

    async def _run(self, follow: _Follow) -> None:
        try:
            await self._consume(follow)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave the job looking alive forever
            log.exception("[parallel-runs] relay failed for %s", follow.record.prompt_id)
            await self.endings.fail(
                follow.record, "relay_error", f"internal error while following: {exc}"
            )
        finally:
            if self._follows.get(follow.record.prompt_id) is follow:
                del self._follows[follow.record.prompt_id]

    async def _consume(self, follow: _Follow) -> None:
        executor = self.executor_for(follow.record)
        async for update in executor.follow(follow.record):
            if isinstance(update, FINAL):
                follow.finishing = True
            follow.record = await self._apply(follow, update)
            if isinstance(update, FINAL):
                return
        await self.endings.fail(
            follow.record, "relay_error", f"{follow.record.executor} stopped reporting on the job"
        )

    async def _apply(self, follow: _Follow, update: Update) -> JobRecord:
        """One update: the record's new state, then what the queuing client sees."""
        record, events = follow.record, follow.events
        if isinstance(update, Waiting):
            return self._changed(record, remote_status=update.remote_status)
        if isinstance(update, Running):
            record = self._changed(
                record,
                status="running",
                remote_status=update.remote_status,
                started_at=record.started_at or time.time(),
            )
            emitted = events.start() + update.events
            events.observe(emitted)
            self._emit(record, emitted)
            if update.preview is not None:
                await self._emit_preview(record, update.preview)
            return record
        if isinstance(update, Trouble):
            return self._changed(record, warning=update.warning)
        if isinstance(update, Finished):
            return await self.endings.completed(record, events, update)
        if isinstance(update, Failed):
            return await self.endings.fail(
                record,
                update.kind,
                update.message,
                events,
                update.remote_status,
                node_id=update.node_id,
                node_type=update.node_type,
            )
        if isinstance(update, Stopped):
            return await self.endings.interrupted(record, events, update.why)
        raise TypeError(f"not an executor update: {update!r}")

    def _changed(self, record: JobRecord, **changes: Any) -> JobRecord:
        """Record and announce `changes`, if they change anything."""
        if all(getattr(record, name) == value for name, value in changes.items()):
            return record
        record = self.registry.update(record.prompt_id, **changes)
        self.announce(record)
        return record
