"""How an offloaded job ends: its result files saved once, its record made terminal in one
durable write, then ComfyUI's closing events, once, in stock order.

A job can reach its end twice: a cancel racing the follower or another cancel, or a restarted
ComfyUI following a job again (stock ComfyUI 0.3.75 never runs aiohttp clean-up on Ctrl-C, so
only writes that were already on disk survive). The first ending wins; a later one returns the
record as it is, saves nothing and sends nothing. Events go out only once the ending is on disk,
so a browser never sees an end that a restart would replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ...parallel_runs.limits import MAX_ERROR_CHARS, clip
from .contract import Finished
from .outputs import OutputSaver
from .prompt_events import Event, PromptEvents
from .records import JobError, JobRecord, SavedFile
from .registry import JobRegistry

log = logging.getLogger(__name__)

OUTPUT_FOLDER = "parallel-runs"
EmitEvents = Callable[[JobRecord, list[Event]], None]
Announce = Callable[[JobRecord], None]


class JobEndings:
    """Success (with its outputs), failure and interruption of offloaded prompts."""

    def __init__(
        self, registry: JobRegistry, saver: OutputSaver, emit: EmitEvents, announce: Announce
    ) -> None:
        self.registry = registry
        self.saver = saver
        self._emit = emit
        self._announce = announce

    async def completed(
        self, record: JobRecord, events: PromptEvents, finished: Finished
    ) -> JobRecord:
        """Save the result's files into the output folder and end the prompt (once)."""
        current = self.registry.get(record.prompt_id) or record
        if not current.active:
            return current  # already ended (and its files saved): nothing to do twice
        subfolder = f"{OUTPUT_FOLDER}/{current.prompt_id}"
        if current.outputs:
            # saved by an earlier run that stopped before the job's end was written
            outputs, problems = current.outputs, []
        else:
            outputs, problems = await self._save(current, subfolder, finished.files)
        warnings = [clip(str(w), 500) for w in finished.warnings][:10]
        problems = [clip(str(r), 500) for r in finished.refused][:10] + problems
        before = events.start() + events.executed(outputs)
        if problems or (warnings and not outputs):
            problems = problems + warnings
            count = sum(len(files) for files in outputs.values())
            kept = f"{count} file(s) saved in output/{subfolder}; " if outputs else ""
            return await self.fail(
                current,
                "result_refused",
                f"{kept}{len(problems)} problem(s) with "
                f"the result of job {current.job_id}: " + "; ".join(problems[:5]),
                events,
                finished.remote_status,
                outputs=outputs,
                before=before,
            )
        if warnings:
            log.warning(
                "[parallel-runs] %s: warnings from %s: %s",
                current.prompt_id,
                current.executor,
                clip("; ".join(warnings), MAX_ERROR_CHARS),
            )
        changes = {"status": "success", "remote_status": finished.remote_status, "error": None}
        return await self._end(current, {**changes, "outputs": outputs}, before, events.success)

    async def fail(
        self,
        record: JobRecord,
        kind: str,
        message: str,
        events: PromptEvents | None = None,
        remote: str | None = None,
        *,
        outputs: Mapping[str, list[SavedFile]] | None = None,
        before: list[Event] | None = None,
        node_id: str | None = None,
        node_type: str | None = None,
    ) -> JobRecord:
        """End the prompt with an error the user can act on (`message` says what to do);
        `node_id` is the node the stock UI marks (else the one that ran last)."""
        error = JobError(type=kind, message=message, node_id=node_id, node_type=node_type)
        current = self.registry.get(record.prompt_id) or record
        events = events or PromptEvents(record.prompt_id, record.node_types)
        changes: dict[str, Any] = {
            "status": "error",
            "error": error,
            "remote_status": remote or current.remote_status,
        }
        if outputs:
            changes["outputs"] = dict(outputs)

        def ending() -> list[Event]:
            log.warning("[parallel-runs] offloaded prompt %s: %s", record.prompt_id, error.message)
            return events.error(error)

        return await self._end(current, changes, before or [], ending)

    async def interrupted(self, record: JobRecord, events: PromptEvents, why: str) -> JobRecord:
        """End the prompt as interrupted (cancelled here or on the remote side)."""

        def ending() -> list[Event]:
            log.info("[parallel-runs] offloaded prompt %s %s", record.prompt_id, why)
            return events.interrupted()

        changes = {"status": "interrupted", "remote_status": "CANCELLED"}
        return await self._end(record, changes, [], ending)

    async def _save(
        self, record: JobRecord, subfolder: str, images: list[Any]
    ) -> tuple[dict[str, list[SavedFile]], list[str]]:
        """The result's files, saved, by the node each belongs to; and what was refused."""
        report = await asyncio.to_thread(self.saver.save_images, subfolder, images)
        outputs: dict[str, list[SavedFile]] = {}
        for index, saved in zip(report.sources, report.saved, strict=True):
            node = node_of(images[index], record)
            outputs.setdefault(node, []).append(SavedFile.model_validate(saved))
        return outputs, list(report.refused)

    async def _end(
        self,
        record: JobRecord,
        changes: dict[str, Any],
        before: list[Event],
        ending: Callable[[], list[Event]],
    ) -> JobRecord:
        """The one write that ends the job, then its events: `before` (the outputs), the
        `parallel.job` status, and `ending()` (ComfyUI's final events). Only the first call
        for a prompt does anything; the check and the write happen without a pause between."""
        current = self.registry.get(record.prompt_id)
        if current is None or not current.active:
            return current or record
        record = self.registry.update(
            record.prompt_id, durable=True, finished_at=time.time(), **changes
        )
        await self._on_disk()
        self._emit(record, before)
        self._announce(record)  # before the final ComfyUI event, after which clients may stop
        self._emit(record, ending())
        return record

    async def _on_disk(self) -> None:
        """Until the registry's writes are on disk (a failed write is logged by the registry;
        the prompt still ends here, it just may be followed again after a restart)."""
        with contextlib.suppress(OSError):
            await self.registry.saved()


def node_of(image: Any, record: JobRecord) -> str:
    """The node an output belongs to: the worker may say so, else the prompt's output node."""
    node = image.get("node") if isinstance(image, Mapping) else None
    if isinstance(node, str) and node in record.node_types:
        return node
    return record.output_node or next(iter(record.node_types), "0")
