"""Follow offloaded RunPod jobs and replay them into ComfyUI's websocket as if they ran here.

One asyncio task per job polls `/status` on an adaptive schedule (`poll_planner`), turns the
worker's progress dicts into ComfyUI's own events (`events`) for the prompt's client,
saves the result files into the output folder (whether or not a browser listens) and records
every status change in the job registry, so a restarted ComfyUI picks the jobs up again.
How a job ends (its files, its last record, its final events) is `endings`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ....parallel_runs.runpod.client import (
    RunpodAnswerTooLarge,
    RunpodAuthError,
    RunpodClient,
    RunpodError,
    RunpodNotFound,
    RunpodRateLimited,
    RunpodServerError,
)
from ....parallel_runs.runpod.models import JobStatus
from ...clients import connected_clients
from ..outputs import OutputSaver
from ..records import JobRecord
from ..registry import JobRegistry
from .endings import JobEndings
from .events import (
    PREVIEW_FLAG,
    PREVIEW_IMAGE,
    PREVIEW_IMAGE_WITH_METADATA,
    Event,
    EventMapper,
    RelayPreview,
    worker_error_text,
)
from .poll_planner import EndpointStats, PollPlanner

log = logging.getLogger(__name__)

# PromptServer.send_sync: (event name | binary event type, JSON data | payload, client id)
Send = Callable[[Any, Any, "str | None"], None]
ClientProvider = Callable[[], RunpodClient]
# client id (None: everyone) -> {connected client id: its websocket feature flags}
Recipients = Callable[["str | None"], Mapping[str, Mapping[str, Any]]]
RESULT_RETENTION = 30 * 60  # RunPod keeps /run results this long after the job ends
MAX_UNEXPECTED_FAILURES = 8  # status polls in a row failing in a way nobody foresaw
WARN_AFTER = 2  # failed status polls in a row before the UI shows the prompt as failing
RETRY_DELAYS = (1.0, 30.0)  # first and longest back-off after a failed status poll


class MissingApiKey(RuntimeError):
    """No RunPod API key is configured; raised before any request."""

    def __init__(self) -> None:
        super().__init__(
            "no RunPod API key is configured: set RUNPOD_API_KEY in ComfyUI's environment "
            "or enter the key in the Parallel Runs settings"
        )


class StillSubmitting(RuntimeError):
    """Cancel arrived before RunPod returned the job id."""


def server_recipients(server: Any) -> Recipients:
    """Who gets a message for `sid` on a PromptServer, with the feature flags each client
    announced on its websocket (previews are encoded per client, as ComfyUI does)."""
    return functools.partial(connected_clients, server)


def _nobody(_sid: str | None) -> dict[str, Mapping[str, Any]]:
    return {}


@dataclass
class _Follow:
    record: JobRecord
    mapper: EventMapper
    planner: PollPlanner = field(default_factory=PollPlanner)
    running_since: float | None = None
    last_poll: float | None = None  # or the submission time, before the first poll
    node_since: dict[str, float] = field(default_factory=dict)  # progress node -> first seen
    seen: tuple[str | None, float | None, float] | None = None  # node, fraction, when reached
    finishing: bool = False
    task: asyncio.Task[None] | None = None
    failing_since: float | None = None  # RunPod rate limiting or failing since then
    unexpected: int = 0  # status polls in a row that failed in an unforeseen way
    failures: int = 0  # status polls in a row that failed, of any kind
    backoff: float = 0.0  # the least wait before the next poll, while polls fail


# --------------------------------------------------------------------------- the relay


class Relay:
    """Owns the follow tasks; `close()` cancels them (records stay active for a resume)."""

    def __init__(
        self,
        registry: JobRegistry,
        saver: OutputSaver,
        send: Send,
        clients: ClientProvider,
        *,
        clock: Callable[[], float] = time.monotonic,
        planner: Callable[..., PollPlanner] = PollPlanner,
        give_up_after: float = RESULT_RETENTION,
        max_unexpected_failures: int = MAX_UNEXPECTED_FAILURES,
        retry_delays: tuple[float, float] = RETRY_DELAYS,
        warn_after: int = WARN_AFTER,
        recipients: Recipients | None = None,
    ) -> None:
        self.registry = registry
        self.saver = saver
        self.endings = JobEndings(registry, saver, self._emit, self.announce)
        self._send = send
        self._recipients = recipients or _nobody  # no clients given: JSON events only
        self._clients = clients
        self._clock = clock
        self._planner = planner
        self._give_up_after = give_up_after
        self._max_unexpected = max_unexpected_failures
        self._retry_delays = retry_delays
        self._warn_after = warn_after
        self._follows: dict[str, _Follow] = {}
        self._stats: dict[str, EndpointStats] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._news: dict[str, int] = {}  # wake-ups per endpoint so far
        self.polls = 0  # status requests made, for benchmarks

    # ------------------------------------------------------------------ events

    def _emit(self, record: JobRecord, events: list[Event]) -> None:
        for event, data in events:
            self._send(event, data, record.client_id)

    def announce(self, record: JobRecord) -> None:
        """`parallel.job`: the package's own status event for an offloaded prompt."""
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
        """A worker's preview to the prompt's client, in the layout each one negotiated:
        type 4 (with prompt and node) for `supports_preview_metadata`, else legacy type 1."""
        recipients = self._recipients(record.client_id)
        if not recipients:
            return
        # decoding proves the worker sent a real image; ComfyUI's type-4 path also wants a
        # PIL image (it encodes previews itself), the legacy one takes the bytes as they are
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

    async def submit(self, record: JobRecord, job_input: dict[str, Any]) -> JobRecord:
        """Register, send `/run`, start following. RunPod's refusals leave no record behind."""
        client = self._clients()
        self.registry.add(record)
        try:
            await self.registry.saved()  # on disk before credit is spent: a crash is then seen
            status = await client.run(record.target, job_input)
        except RunpodError as exc:
            if exc.status == 0:  # the request may have reached RunPod: keep a trace
                await self.endings.fail(
                    record,
                    "submit_uncertain",
                    f"{exc.message}; the job may exist on "
                    "RunPod without being followed: check the endpoint's requests there",
                )
            else:
                self.registry.remove(record.prompt_id)
            raise
        except BaseException:
            self.registry.remove(record.prompt_id)
            raise
        record = self.registry.update(  # the one mapping a restart cannot do without
            record.prompt_id, durable=True, job_id=status.id, remote_status=status.status
        )
        self.announce(record)
        self.follow(record)
        return record

    def follow(self, record: JobRecord) -> None:
        if record.prompt_id in self._follows:
            return
        mapper = EventMapper(record.prompt_id, record.node_types)
        follow = _Follow(record, mapper, self._planner(started=self._clock()))
        follow.last_poll = follow.planner.started
        if record.status == "running":
            follow.mapper.started = True  # a resumed job: the UI already saw it start
            follow.running_since = self._clock()
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
                    "ComfyUI stopped while submitting this "
                    "prompt to RunPod; it may have run there without being followed",
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
        """Until the job's follow task ends (tests and benchmarks)."""
        follow = self._follows.get(prompt_id)
        if follow is not None and follow.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(follow.task)
        return self.registry.get(prompt_id)

    def following(self) -> list[str]:
        return list(self._follows)

    # ------------------------------------------------------------------ cancel

    async def cancel(self, prompt_id: str) -> JobRecord:
        """Ask RunPod to cancel, then report the prompt interrupted (unless it just finished)."""
        record = self.registry.get(prompt_id)
        if record is None:
            raise KeyError(prompt_id)
        if not record.active:
            return record
        if record.job_id is None:
            raise StillSubmitting(prompt_id)
        try:
            status: JobStatus | None = await self._clients().cancel(record.target, record.job_id)
        except RunpodNotFound:
            status = None  # gone on RunPod's side: nothing left to stop
        # while RunPod answered, the job may have ended (the follower, or a second cancel)
        record = self.registry.get(prompt_id) or record
        follow = self._follows.get(prompt_id)
        if not record.active or (follow is not None and follow.finishing):
            return record
        if status is not None and status.status == "COMPLETED":
            self._nudge(record.target)  # the follower collects the result
            return record
        if follow is not None and follow.task is not None:
            follow.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow.task
        if self._follows.get(prompt_id) is follow:
            self._follows.pop(prompt_id, None)
        mapper = follow.mapper if follow else EventMapper(prompt_id, record.node_types)
        # ends the prompt only if nothing else did meanwhile: one execution_interrupted
        return await self.endings.interrupted(record, mapper, "cancelled from ComfyUI")

    # ------------------------------------------------------------------ the follow loop

    def _stats_for(self, endpoint: str) -> EndpointStats:
        return self._stats.setdefault(endpoint, EndpointStats())

    def _nudge(self, endpoint: str) -> None:
        """Wake the endpoint's sleeping followers so they re-plan with fresh knowledge (and
        count the news, for followers that were busy with a request just then)."""
        self._news[endpoint] = self._news.get(endpoint, 0) + 1
        event = self._wake.pop(endpoint, None)
        if event is not None:
            event.set()

    async def _sleep(self, endpoint: str, seconds: float) -> bool:
        """Sleep, or return True early when a sibling job finished (a hint to re-plan)."""
        event = self._wake.setdefault(endpoint, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), max(seconds, 0.0))
        except asyncio.TimeoutError:
            return False
        return True

    def _remaining(self, follow: _Follow, now: float) -> tuple[float | None, float, bool]:
        """Expected seconds until the job ends, how long past that to keep polling fast, and
        whether the endpoint's recent jobs (rather than a progress bar) predicted it."""
        if follow.running_since is None:
            return None, 1.0, False
        elapsed = now - follow.running_since
        guesses = []
        if follow.seen is not None and follow.seen[0] is not None and follow.seen[1]:
            node, fraction, reached = follow.seen
            since = follow.node_since.get(node)
            if since is not None and fraction >= 0.05 and reached > since:
                # the bar moved `fraction` in `reached - since`: it ends at that pace
                ends = reached + (reached - since) * (1.0 - fraction) / fraction
                guesses.append(ends - now)
        estimate = self._stats_for(follow.record.target).estimate
        overdue = max(1.0, 0.5 * (estimate or 0.0))
        if estimate is not None:  # recent jobs of this endpoint predict best
            return estimate - elapsed, overdue, True
        return (guesses[0] if guesses else None), overdue, False

    async def _run(self, follow: _Follow) -> None:
        try:
            await self._loop(follow)
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

    async def _loop(self, follow: _Follow) -> None:
        seen_news = self._news.get(follow.record.target, 0)
        while True:
            record = follow.record
            now = self._clock()
            remaining, overdue, learned = self._remaining(follow, now)
            # news of a sibling (which may have come while this job was mid-request)
            news = self._news.get(record.target, 0)
            woken, seen_news = news != seen_news, news
            planned = follow.planner.delay(
                now, record.remote_status, remaining, overdue, learned, woken=woken
            )
            if await self._sleep(record.target, max(planned, follow.backoff)):
                continue
            now = self._clock()
            follow.planner.spend(now)
            self.polls += 1
            try:
                client = self._clients()
                status = await client.status(record.target, record.job_id or "", once=True)
            except Exception as exc:
                ending = self._poll_failed(follow, exc, now)
                if ending is None:
                    continue
                await self.endings.fail(record, *ending, follow.mapper)
                return
            self._recovered(follow)
            follow.record = await self._apply(follow, status, previous=follow.last_poll)
            follow.last_poll = now
            if status.is_final:
                return

    def _warn(self, follow: _Follow, why: str) -> None:
        """Show the prompt as failing (it keeps being followed): after `warn_after` failed
        polls in a row, with what the remote side answered last."""
        follow.failures += 1
        if follow.failures < self._warn_after:
            return
        record = follow.record
        warning = (
            f"RunPod is not answering as expected for job {record.job_id}: {why} "
            f"({follow.failures} checks in a row; still trying, next in {follow.backoff:.0f} s)"
        )
        follow.record = self.registry.update(record.prompt_id, warning=warning)
        self.announce(follow.record)

    def _recovered(self, follow: _Follow) -> None:
        """A poll succeeded: forget the failures, and clear a warning the UI shows."""
        follow.failing_since, follow.unexpected, follow.backoff = None, 0, 0.0
        follow.failures = 0
        if follow.record.warning is not None:
            follow.record = self.registry.update(follow.record.prompt_id, warning=None)
            self.announce(follow.record)

    def _poll_failed(self, follow: _Follow, exc: Exception, now: float) -> tuple[str, str] | None:
        """A failed status poll: (error type, message) when it ends the prompt, None when the
        relay should back off and ask again. Only RunPod's definite answers end it at once:
        anything else may pass, and giving up leaves a job running (and billed) unfollowed."""
        record = follow.record
        if isinstance(exc, RunpodNotFound):
            return "expired", (
                f"RunPod no longer knows job {record.job_id} on "
                f"endpoint {record.target}: results are kept only 30 minutes "
                "after a job ends (or the job was purged). Queue the prompt again."
            )
        if isinstance(exc, RunpodAuthError):
            return "auth", (
                f"{exc.message} while following job {record.job_id}"
                ": check RUNPOD_API_KEY or the key in the Parallel Runs settings "
                "(the job may still run on RunPod)"
            )
        if isinstance(exc, MissingApiKey):
            return "missing_api_key", str(exc)
        if isinstance(exc, RunpodAnswerTooLarge):
            return "answer_too_large", f"job {record.job_id}: {exc.message}"
        retry_after = None
        if isinstance(exc, (RunpodRateLimited, RunpodServerError)):
            follow.failing_since = follow.failing_since or now
            if now - follow.failing_since > self._give_up_after:
                return "unreachable", f"gave up following job {record.job_id}: {exc.message}"
            why, retry_after = exc.message, exc.retry_after
        elif isinstance(exc, RunpodError):
            return "runpod_error", exc.message
        else:
            follow.unexpected += 1
            if follow.unexpected >= self._max_unexpected:
                return "relay_error", (
                    f"stopped following job {record.job_id} on endpoint {record.target} "
                    f"after {follow.unexpected} failed status checks in a row "
                    f"({type(exc).__name__}); the job may still run, and bill, on RunPod: "
                    "check or cancel it in the endpoint's requests there, and see ComfyUI's "
                    "log for the failures"
                )
            # the class only: a message might quote a request (headers, the key)
            why = f"unexpected {type(exc).__name__} ({follow.unexpected} in a row)"
        first, longest = self._retry_delays
        follow.backoff = min(max(follow.backoff * 2, first, retry_after or 0.0), longest)
        self._warn(follow, why)
        log.warning(
            "[parallel-runs] %s: checking job %s failed: %s; retrying in %.1f s",
            record.prompt_id,
            record.job_id,
            why,
            follow.backoff,
        )
        return None

    async def _apply(self, follow: _Follow, status: JobStatus, previous: float | None) -> JobRecord:
        record, mapper = follow.record, follow.mapper
        now = self._clock()
        if status.status in ("IN_PROGRESS", "COMPLETED") and follow.running_since is None:
            # it started after the previous poll (or the submission): assume as early as that,
            # so predictions err towards polling early (a request) rather than late (latency)
            follow.running_since = now if previous is None else previous
        if status.status == "IN_PROGRESS":
            if record.status == "queued" or record.remote_status != status.status:
                record = self.registry.update(
                    record.prompt_id,
                    status="running",
                    remote_status=status.status,
                    started_at=record.started_at or time.time(),
                )
                self.announce(record)
            self._emit(record, mapper.start() + mapper.progress(status.output))
            preview = mapper.preview(status.output)
            if preview is not None:
                await self._emit_preview(record, preview)
            node, between = mapper.progress_node, now if previous is None else (previous + now) / 2
            if node is not None and node not in follow.node_since:
                # the first bar starts with the job; later ones between two polls
                first = not follow.node_since
                follow.node_since[node] = follow.running_since if first else between
            if follow.seen is None or follow.seen[:2] != (node, mapper.node_fraction):
                follow.seen = (node, mapper.node_fraction, between)
            return record
        if status.status == "IN_QUEUE":
            if record.remote_status != status.status:
                record = self.registry.update(record.prompt_id, remote_status=status.status)
                self.announce(record)
            return record
        self._learn(follow, status, now)
        follow.finishing = True
        if status.status == "COMPLETED":
            return await self.endings.completed(record, mapper, status)
        if status.status == "CANCELLED":
            return await self.endings.interrupted(record, mapper, "cancelled on RunPod")
        kind, message = worker_error_text(status.error)
        if status.status == "TIMED_OUT":
            kind, message = (
                "TimedOut",
                (
                    f"RunPod stopped job {status.id} at the endpoint's execution timeout; raise "
                    "the timeout in the endpoint settings or make the workflow lighter"
                ),
            )
        message = f"RunPod job failed: {message}"
        return await self.endings.fail(record, kind, message, mapper, status.status)

    def _learn(self, follow: _Follow, status: JobStatus, now: float) -> None:
        """Update the endpoint's execution time; siblings re-plan if it moved noticeably."""
        seconds = status.executionTime / 1000 if status.executionTime else None
        if seconds is None and follow.running_since is not None:
            seconds = now - follow.running_since
        if not seconds or status.status != "COMPLETED":
            return
        stats = self._stats_for(follow.record.target)
        before = stats.estimate
        stats.observe(seconds)
        if before is None or abs(stats.estimate - before) > 0.1 * before:
            self._nudge(follow.record.target)
