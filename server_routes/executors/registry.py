"""The offloaded jobs this ComfyUI knows about, persisted so a restart resumes them.

One JSON file in ComfyUI's user directory, rewritten atomically (write + rename) shortly after
status changes; many changes in a burst cost one write. A new job is written at once, before it
is sent to RunPod; durable changes (the job id, a job's end) are also fsynced. It maps our
prompt id to the RunPod job id and keeps what the jobs list and a restarted relay need. It never
holds the API key.

The state is serialised on the event loop and written by a worker thread, so the loop never
waits for the disk; `saved()` awaits those writes, `flush()` writes synchronously (shutdown,
atexit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .records import JobRecord
from .state_files import write_private

log = logging.getLogger(__name__)
KEEP_FINISHED = 200


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal[1] = 1
    jobs: list[JobRecord] = Field(default_factory=list)


class JobRegistry:
    """In-memory records with write-through persistence. Records change on one event loop;
    writes run in threads and never put an older state over a newer one."""

    def __init__(
        self, path: Path, keep_finished: int = KEEP_FINISHED, save_delay: float = 0.2
    ) -> None:
        self.path = Path(path)
        self.keep_finished = keep_finished
        self.save_delay = save_delay
        self._jobs: dict[str, JobRecord] = {}
        self._pending: asyncio.TimerHandle | None = None
        self._version = 0  # bumped by every change
        self._written = 0  # the newest version on disk (under _write_lock)
        self._write_lock = threading.Lock()
        # One write in a thread at a time; changes made meanwhile wait in `_queued` and go out
        # together next, so a burst of job endings costs a few writes, not one each. Each
        # future ends with the write's error (or None) as its result.
        self._writing: asyncio.Future[BaseException | None] | None = None
        self._queued: asyncio.Future[BaseException | None] | None = None
        self._queued_durable = False

    def load(self) -> list[JobRecord]:
        """Read the file (a damaged one is set aside, not fatal); returns the active records."""
        try:
            raw = self.path.read_text("utf-8")
        except FileNotFoundError:
            return []
        try:
            stored = RegistryFile.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            aside = self.path.with_suffix(f".damaged-{int(time.time())}")
            self.path.replace(aside)
            log.warning("[parallel-runs] job registry unreadable (%s); moved to %s", exc, aside)
            return []
        self._jobs = {job.prompt_id: job for job in stored.jobs}
        return self.active()

    def save(self, durable: bool = False) -> None:
        """Write now (and cancel a pending deferred write): in a thread when an event loop
        runs, else right here. `durable` fsyncs the file and its folder."""
        self._cancel_pending()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write(self._version, self._serialise(), durable)
            return
        self._queued_durable = self._queued_durable or durable
        if self._queued is None:
            self._queued = loop.create_future()
        if self._writing is None:
            self._start_queued(loop)

    def _start_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the queued write with the state as it is now (every change so far)."""
        signal, durable = self._queued, self._queued_durable
        assert signal is not None
        self._queued, self._queued_durable = None, False
        self._writing = signal
        write = loop.run_in_executor(None, self._write, self._version, self._serialise(), durable)

        def finished(future: asyncio.Future[None]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                log.error("[parallel-runs] could not write %s: %s", self.path, error)
            self._writing = None
            if self._queued is not None:
                self._start_queued(loop)
            signal.set_result(error)

        write.add_done_callback(finished)

    def save_soon(self) -> None:
        """Write within `save_delay` seconds, once for any number of changes until then."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        if self._pending is None:
            self._pending = loop.call_later(self.save_delay, self.save)

    async def saved(self) -> None:
        """Until every change made so far is on disk; raises the error of a write it waited
        for (each failure reaches the callers waiting at the time, once)."""
        first_error: BaseException | None = None
        while (pending := self._writing or self._queued) is not None:
            await asyncio.wait({pending})  # a cancelled wait stops no write
            first_error = first_error or pending.result()
        if first_error is not None:
            raise first_error

    def flush(self) -> None:
        """Write what is not on disk yet, synchronously and durably. For shutdown: needs no
        event loop (atexit), waits for a write in progress, and may be called again."""
        self._cancel_pending()
        with self._write_lock:
            if self._written >= self._version:
                return
        self._write(self._version, self._serialise(), durable=True)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _serialise(self) -> str:
        self._prune()
        return RegistryFile(jobs=list(self._jobs.values())).model_dump_json()

    def _write(self, version: int, text: str, durable: bool) -> None:
        """Put state `version` on disk unless a newer one already is (threads may overtake)."""
        with self._write_lock:
            if version < self._written or (version == self._written and not durable):
                return
            write_private(self.path, text, durable=durable)
            self._written = version

    def _changed(self) -> None:
        self._version += 1

    def _prune(self) -> None:
        finished = [job for job in self._jobs.values() if not job.active]
        finished.sort(key=lambda job: job.updated_at)
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job.prompt_id]

    def add(self, record: JobRecord) -> JobRecord:
        if record.prompt_id in self._jobs:
            raise KeyError(f"prompt id {record.prompt_id} already registered")
        self._jobs[record.prompt_id] = record
        self._changed()
        self.save()
        return record

    def get(self, prompt_id: str) -> JobRecord | None:
        return self._jobs.get(prompt_id)

    def update(self, prompt_id: str, *, durable: bool = False, **changes: Any) -> JobRecord:
        """Apply `changes` (validated) and persist soon; `durable` (implied when the job ends):
        write now, with fsync (`await saved()` to wait for it)."""
        current = self._jobs[prompt_id]
        record = JobRecord.model_validate(
            {**current.model_dump(), **changes, "updated_at": time.time()}
        )
        self._jobs[prompt_id] = record
        self._changed()
        if durable or (current.active and not record.active):
            self.save(durable=True)
        else:
            self.save_soon()
        return record

    def remove(self, prompt_id: str) -> None:
        if self._jobs.pop(prompt_id, None) is not None:
            self._changed()
            self.save()

    def all(self) -> list[JobRecord]:
        """Active first, then newest first."""
        return sorted(self._jobs.values(), key=lambda j: (not j.active, -j.created_at))

    def active(self) -> list[JobRecord]:
        return [job for job in self.all() if job.active]

    def summaries(self) -> Iterable[dict[str, Any]]:
        """The jobs source for GET /parallel/jobs."""
        return [job.summary() for job in self.all()]
