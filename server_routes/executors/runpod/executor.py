"""RunPod serverless as an executor: `/run` to submit, `/status` polled on an adaptive schedule
to follow, `/cancel`, `/health`.

Following is polling: RunPod keeps the worker's latest progress post in `status.output` while
a job runs, and the result there once it completed. One poll is one request; failures back off
(honouring Retry-After) and, after `warn_after` in a row, show as a warning while the job is
still followed. Only RunPod's definite answers end a job early: giving up on anything else
would leave a job running, and billed, unfollowed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ....parallel_runs.runpod.client import (
    MAX_RUN_BYTES,
    RunpodAnswerTooLarge,
    RunpodAuthError,
    RunpodBadRequest,
    RunpodClient,
    RunpodError,
    RunpodNotFound,
    RunpodPayloadTooLarge,
    RunpodRateLimited,
    RunpodServerError,
)
from ....parallel_runs.runpod.models import JobStatus
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
    Trouble,
    Update,
    Waiting,
)
from ..inputs import InputsTooLarge, PromptInputError, attach_input_images
from ..records import JobRecord
from .config import OffloadConfig
from .events import EventMapper, worker_error_text
from .poll_planner import EndpointStats, PollPlanner

log = logging.getLogger(__name__)

KIND = "runpod"
ClientProvider = Callable[[], RunpodClient]
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


def refusal(exc: RunpodError) -> ExecutorRefused:
    """What a RunPod error means to the user of the ComfyUI UI."""
    if isinstance(exc, RunpodAuthError):
        return ExecutorRefused(
            401,
            "auth",
            f"{exc.message} (HTTP {exc.status}): check "
            "RUNPOD_API_KEY or the key in the Parallel Runs settings",
        )
    if isinstance(exc, RunpodNotFound):
        return ExecutorRefused(
            400,
            "unknown_endpoint",
            "RunPod does not know this endpoint (or the key cannot see it): check the endpoint id",
            "executor",
        )
    if isinstance(exc, RunpodPayloadTooLarge):
        return ExecutorRefused(413, "payload_too_large", exc.message)
    if isinstance(exc, RunpodRateLimited):
        return ExecutorRefused(429, "rate_limited", f"{exc.message}; try again in a moment")
    if isinstance(exc, RunpodBadRequest):
        return ExecutorRefused(400, "runpod_bad_request", exc.message)
    return ExecutorRefused(502, "runpod_unavailable", f"{exc.message}; try again later")


def job_input(job: PromptJob) -> dict[str, Any]:
    """worker-comfyui's input: the prompt, with the files it loads attached as base64."""
    try:
        attached = attach_input_images(job.prompt, job.folders, MAX_RUN_BYTES)
    except InputsTooLarge as exc:
        field = f"prompt.{exc.node_id}.inputs"
        raise ExecutorRefused(413, "payload_too_large", str(exc), field) from None
    except PromptInputError as exc:
        field = f"prompt.{exc.node_id}.inputs"
        raise ExecutorRefused(400, "missing_input", str(exc), field) from None
    prepared: dict[str, Any] = {"workflow": attached.prompt}
    if attached.images:
        prepared["images"] = attached.images
    size = len(json.dumps({"input": prepared}, separators=(",", ":")).encode())
    if size > MAX_RUN_BYTES:
        raise ExecutorRefused(
            413,
            "payload_too_large",
            f"the prompt with its {len(attached.images)} input file(s) "
            f"is {size / 1e6:.1f} MB; RunPod accepts at most {MAX_RUN_BYTES / 1e6:.1f} MB per "
            "job: use smaller input images",
        )
    return prepared


def result_update(status: JobStatus) -> Finished | Failed:
    """A COMPLETED job's output, read as worker-comfyui's `{"images": [...], "errors"?}`."""
    output = status.output
    if output is None or output == {}:
        return Failed(
            "no_output",
            f"RunPod job {status.id} completed without any output: make sure the workflow has "
            "an output node such as SaveImage, and check the worker's log on RunPod",
            status.status,
        )
    if not isinstance(output, Mapping) or not isinstance(output.get("images", []), list):
        return Failed(
            "bad_output",
            f"RunPod job {status.id} returned an output this package does not understand "
            "(expected {'images': [...]}); is the endpoint running a ComfyUI worker?",
            status.status,
        )
    images = output.get("images") or []
    if output.get("error") and not images:
        return Failed("worker_error", f"the worker reported: {output['error']}", status.status)
    errors = output.get("errors") or []
    warnings = [str(e) for e in errors] if isinstance(errors, list) else [str(errors)]
    return Finished(status.status, list(images), warnings)


def ending_update(status: JobStatus) -> Failed | Stopped:
    """A job that ended without a result: cancelled, failed or timed out on RunPod."""
    if status.status == "CANCELLED":
        return Stopped("cancelled on RunPod")
    kind, message = worker_error_text(status.error)
    if status.status == "TIMED_OUT":
        kind = "TimedOut"
        message = (
            f"RunPod stopped job {status.id} at the endpoint's execution timeout; raise "
            "the timeout in the endpoint settings or make the workflow lighter"
        )
    return Failed(kind, f"RunPod job failed: {message}", status.status)


@dataclass
class _Poll:
    """What following one job has learned so far."""

    record: JobRecord
    mapper: EventMapper
    planner: PollPlanner
    remote_status: str | None = None
    running_since: float | None = None
    last_poll: float | None = None  # or the submission time, before the first poll
    node_since: dict[str, float] = field(default_factory=dict)  # progress node -> first seen
    seen: tuple[str | None, float | None, float] | None = None  # node, fraction, when reached
    failing_since: float | None = None  # RunPod rate limiting or failing since then
    unexpected: int = 0  # status polls in a row that failed in an unforeseen way
    failures: int = 0  # status polls in a row that failed, of any kind
    backoff: float = 0.0  # the least wait before the next poll, while polls fail
    warned: bool = False


class RunpodExecutor:
    """RunPod endpoints behind the executor contract. Jobs of one endpoint share what is
    learned about its run times, and wake each other when that changes."""

    kind = KIND
    checks_local_nodes = (
        True  # the worker runs a ComfyUI like this one: its node types are checked here
    )

    def __init__(
        self,
        config: OffloadConfig,
        clients: ClientProvider,
        *,
        clock: Callable[[], float] = time.monotonic,
        planner: Callable[..., PollPlanner] = PollPlanner,
        give_up_after: float = RESULT_RETENTION,
        max_unexpected_failures: int = MAX_UNEXPECTED_FAILURES,
        retry_delays: tuple[float, float] = RETRY_DELAYS,
        warn_after: int = WARN_AFTER,
    ) -> None:
        self.config = config
        self._clients = clients
        self._clock = clock
        self._planner = planner
        self._give_up_after = give_up_after
        self._max_unexpected = max_unexpected_failures
        self._retry_delays = retry_delays
        self._warn_after = warn_after
        self._stats: dict[str, EndpointStats] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._news: dict[str, int] = {}  # wake-ups per endpoint so far
        self.polls = 0  # status requests made, for benchmarks

    # ------------------------------------------------------------------ submit

    def configured(self) -> list[str]:
        endpoint = self.config.endpoint_id
        return [f"{KIND}:{endpoint}"] if endpoint and self.config.api_key() else []

    def resolve(self, name: str | None) -> str:
        if not self.config.allowed:
            raise ExecutorRefused(409, "offload_refused", self.config.allowed_detail())
        endpoint = name or self.config.endpoint_id
        if not endpoint:
            raise ExecutorRefused(
                400,
                "no_endpoint",
                "no RunPod endpoint is chosen: set the endpoint id in the Parallel Runs settings",
                "executor",
            )
        if not self.config.api_key():
            raise ExecutorRefused(400, "missing_api_key", str(MissingApiKey()))
        return f"{KIND}:{endpoint}"

    async def prepare(self, executor: str, job: PromptJob) -> dict[str, Any]:
        key = self.config.api_key()
        sent = json.dumps([job.prompt, job.extra_data], default=str)
        if key and key in sent:
            raise ExecutorRefused(
                400,
                "secret_in_request",
                "the request contains the RunPod API key; "
                "remove it from the workflow (it would reach the worker and PNGs)",
            )
        return await asyncio.to_thread(job_input, job)

    def _client(self) -> RunpodClient:
        try:
            return self._clients()
        except MissingApiKey as exc:
            raise ExecutorRefused(400, "missing_api_key", str(exc)) from None

    async def submit(self, record: JobRecord, prepared: dict[str, Any]) -> Accepted:
        try:
            status = await self._client().run(record.target, prepared)
        except RunpodError as exc:
            refused = refusal(exc)
            if exc.status == 0:  # the request may have reached RunPod
                refused.uncertain = True
                refused.message = (
                    f"{exc.message}; the job may exist on RunPod without being followed: "
                    "check the endpoint's requests there"
                )
            raise refused from None
        return Accepted(status.id, status.status)

    # ------------------------------------------------------------------ cancel, health

    async def cancel(self, record: JobRecord) -> CancelOutcome:
        try:
            status = await self._client().cancel(record.target, record.job_id or "")
        except RunpodNotFound:
            return "stopped"  # gone on RunPod's side: nothing left to stop
        except RunpodError as exc:
            raise refusal(exc) from None
        if status.status == "COMPLETED":
            self._nudge(record.target)  # its follower collects the result
            return "finishing"
        return "stopped"

    async def health(self, executor: str) -> Health:
        endpoint = executor.partition(":")[2]
        try:
            answer = await self._client().health(endpoint)
        except (ExecutorRefused, RunpodError) as exc:
            return Health(executor, False, detail=getattr(exc, "message", str(exc)))
        queued, running = answer.jobs.inQueue, answer.jobs.inProgress
        per_job = self._stats_for(endpoint).estimate
        return Health(executor, True, queued, running, answer.workers.idle, per_job)

    # ------------------------------------------------------------------ follow

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

    def _remaining(self, poll: _Poll, now: float) -> tuple[float | None, float, bool]:
        """Expected seconds until the job ends, how long past that to keep polling fast, and
        whether the endpoint's recent jobs (rather than a progress bar) predicted it."""
        if poll.running_since is None:
            return None, 1.0, False
        elapsed = now - poll.running_since
        guesses = []
        if poll.seen is not None and poll.seen[0] is not None and poll.seen[1]:
            node, fraction, reached = poll.seen
            since = poll.node_since.get(node)
            if since is not None and fraction >= 0.05 and reached > since:
                # the bar moved `fraction` in `reached - since`: it ends at that pace
                ends = reached + (reached - since) * (1.0 - fraction) / fraction
                guesses.append(ends - now)
        estimate = self._stats_for(poll.record.target).estimate
        overdue = max(1.0, 0.5 * (estimate or 0.0))
        if estimate is not None:  # recent jobs of this endpoint predict best
            return estimate - elapsed, overdue, True
        return (guesses[0] if guesses else None), overdue, False

    async def follow(self, record: JobRecord) -> AsyncIterator[Update]:
        poll = _Poll(record, EventMapper(record.prompt_id), self._planner(started=self._clock()))
        poll.last_poll, poll.remote_status = poll.planner.started, record.remote_status
        if record.status == "running":
            poll.running_since = self._clock()  # a resumed job: it runs since before now
        endpoint = record.target
        seen_news = self._news.get(endpoint, 0)
        while True:
            now = self._clock()
            remaining, overdue, learned = self._remaining(poll, now)
            # news of a sibling (which may have come while this job was mid-request)
            news = self._news.get(endpoint, 0)
            woken, seen_news = news != seen_news, news
            planned = poll.planner.delay(
                now, poll.remote_status, remaining, overdue, learned, woken=woken
            )
            if await self._sleep(endpoint, max(planned, poll.backoff)):
                continue
            now = self._clock()
            poll.planner.spend(now)
            self.polls += 1
            try:
                status = await self._clients().status(endpoint, record.job_id or "", once=True)
            except Exception as exc:
                trouble = self._poll_failed(poll, exc, now)
                if trouble is not None:
                    yield trouble
                if isinstance(trouble, Failed):
                    return
                continue
            if poll.warned:
                poll.warned = False
                yield Trouble(None)
            poll.failing_since, poll.unexpected, poll.backoff, poll.failures = None, 0, 0.0, 0
            update = self._read(poll, status, previous=poll.last_poll)
            poll.last_poll, poll.remote_status = now, status.status
            yield update
            if status.is_final:
                return

    def _read(self, poll: _Poll, status: JobStatus, previous: float | None) -> Update:
        """The update one status answer brings."""
        now = self._clock()
        if status.status in ("IN_PROGRESS", "COMPLETED") and poll.running_since is None:
            # it started after the previous poll (or the submission): assume as early as that,
            # so predictions err towards polling early (a request) rather than late (latency)
            poll.running_since = now if previous is None else previous
        if status.status == "IN_QUEUE":
            return Waiting(status.status)
        if status.status == "IN_PROGRESS":
            events = poll.mapper.progress(status.output)  # first: it reads which post is newest
            preview = poll.mapper.preview(status.output)
            self._track_bar(poll, now, previous)
            return Running(status.status, events, preview)
        self._learn(poll, status, now)
        if status.status == "COMPLETED":
            return result_update(status)
        return ending_update(status)

    def _track_bar(self, poll: _Poll, now: float, previous: float | None) -> None:
        """When the moving progress bar started and how far it got: its end predicts the
        job's."""
        node, mapper = poll.mapper.progress_node, poll.mapper
        between = now if previous is None else (previous + now) / 2
        if node is not None and node not in poll.node_since:
            # the first bar starts with the job; later ones between two polls
            first = not poll.node_since
            poll.node_since[node] = poll.running_since if first else between
        if poll.seen is None or poll.seen[:2] != (node, mapper.node_fraction):
            poll.seen = (node, mapper.node_fraction, between)

    def _learn(self, poll: _Poll, status: JobStatus, now: float) -> None:
        """Update the endpoint's execution time; siblings re-plan if it moved noticeably."""
        seconds = status.executionTime / 1000 if status.executionTime else None
        if seconds is None and poll.running_since is not None:
            seconds = now - poll.running_since
        if not seconds or status.status != "COMPLETED":
            return
        stats = self._stats_for(poll.record.target)
        before = stats.estimate
        stats.observe(seconds)
        if before is None or abs(stats.estimate - before) > 0.1 * before:
            self._nudge(poll.record.target)

    def _poll_failed(self, poll: _Poll, exc: Exception, now: float) -> Failed | Trouble | None:
        """A failed status poll: Failed when it ends the prompt; else back off and ask again,
        with a Trouble to show once `warn_after` polls in a row failed."""
        record = poll.record
        if isinstance(exc, RunpodNotFound):
            return Failed(
                "expired",
                f"RunPod no longer knows job {record.job_id} on "
                f"endpoint {record.target}: results are kept only 30 minutes "
                "after a job ends (or the job was purged). Queue the prompt again.",
            )
        if isinstance(exc, RunpodAuthError):
            return Failed(
                "auth",
                f"{exc.message} while following job {record.job_id}"
                ": check RUNPOD_API_KEY or the key in the Parallel Runs settings "
                "(the job may still run on RunPod)",
            )
        if isinstance(exc, MissingApiKey):
            return Failed("missing_api_key", str(exc))
        if isinstance(exc, RunpodAnswerTooLarge):
            return Failed("answer_too_large", f"job {record.job_id}: {exc.message}")
        retry_after = None
        if isinstance(exc, (RunpodRateLimited, RunpodServerError)):
            poll.failing_since = poll.failing_since or now
            if now - poll.failing_since > self._give_up_after:
                return Failed(
                    "unreachable", f"gave up following job {record.job_id}: {exc.message}"
                )
            why, retry_after = exc.message, exc.retry_after
        elif isinstance(exc, RunpodError):
            return Failed("runpod_error", exc.message)
        else:
            poll.unexpected += 1
            if poll.unexpected >= self._max_unexpected:
                return Failed(
                    "relay_error",
                    f"stopped following job {record.job_id} on endpoint {record.target} "
                    f"after {poll.unexpected} failed status checks in a row "
                    f"({type(exc).__name__}); the job may still run, and bill, on RunPod: "
                    "check or cancel it in the endpoint's requests there, and see ComfyUI's "
                    "log for the failures",
                )
            # the class only: a message might quote a request (headers, the key)
            why = f"unexpected {type(exc).__name__} ({poll.unexpected} in a row)"
        first, longest = self._retry_delays
        poll.backoff = min(max(poll.backoff * 2, first, retry_after or 0.0), longest)
        poll.failures += 1
        log.warning(
            "[parallel-runs] %s: checking job %s failed: %s; retrying in %.1f s",
            record.prompt_id,
            record.job_id,
            why,
            poll.backoff,
        )
        if poll.failures < self._warn_after:
            return None
        poll.warned = True
        return Trouble(
            f"RunPod is not answering as expected for job {record.job_id}: {why} "
            f"({poll.failures} checks in a row; still trying, next in {poll.backoff:.0f} s)"
        )
