"""`GET /parallel/jobs`: every prompt the server knows, running first, so a browser tab can
rebuild its per-prompt view after a websocket reconnect or a page load.

Jobs come from sources (callables returning `JobSummary`s): `local_jobs(server)` reads ComfyUI's
own prompt queue; the offload registry adds the prompts it runs remotely.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..executors.records import EXECUTOR_NAME
from ..responses import invalid

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "success", "error", "interrupted"]
JobSource = Callable[[], Iterable["JobSummary"]]
DEFAULT_HISTORY = 50
MAX_HISTORY = 500
_STATUS_ORDER: dict[str, int] = {"running": 0, "queued": 1}
# the events that end a prompt, the one that wins when several are recorded first
_LAST_END = ("execution_interrupted", "execution_error", "execution_success")


class JobSummary(BaseModel):
    """One prompt as the browser's store understands it (times in ms since the epoch)."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    status: Status
    executor: str = Field(default="local", pattern=rf"^(local|[a-z]+:{EXECUTOR_NAME})$")
    client_id: str | None = None
    workflow_id: str | None = None
    number: float | None = None
    queued_at: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    error: dict[str, Any] | None = None
    warning: str | None = None
    outputs: dict[str, Any] | None = None


class JobList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobSummary]


class JobsQuery(BaseModel):
    """Query string of GET /parallel/jobs."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=DEFAULT_HISTORY, ge=0, le=MAX_HISTORY)


def _sort_key(job: JobSummary) -> tuple[int, float]:
    """Running, then queued (in queue order), then finished newest first."""
    group = _STATUS_ORDER.get(job.status, 2)
    if group == 1:
        return group, job.number if job.number is not None else float(job.queued_at or 0)
    return group, -float(job.finished_at or job.started_at or job.queued_at or 0)


def collect(sources: Sequence[JobSource], limit: int) -> list[JobSummary]:
    """Merge the sources (the first to report a prompt id wins), keep `limit` finished jobs."""
    seen: dict[str, JobSummary] = {}
    for source in sources:
        try:
            jobs = list(source())
        except Exception:  # one broken source must not hide the others
            log.exception("[parallel-runs] a job source failed")
            continue
        for job in jobs:
            seen.setdefault(job.prompt_id, job)
    ordered = sorted(seen.values(), key=_sort_key)
    active = [job for job in ordered if job.status in _STATUS_ORDER]
    finished = [job for job in ordered if job.status not in _STATUS_ORDER]
    return active + finished[:limit]


def jobs_routes(sources: Sequence[JobSource]) -> web.RouteTableDef:
    """The jobs route over `sources` (a live sequence: sources appended later are read too)."""
    routes = web.RouteTableDef()

    @routes.get("/parallel/jobs")
    async def get_jobs(request: web.Request) -> web.Response:
        try:
            query = JobsQuery.model_validate(dict(request.query))
        except ValidationError as error:
            return invalid(error, "query", "invalid_query")
        body = JobList(jobs=collect(sources, query.limit))
        return web.json_response(body.model_dump(mode="json", exclude_none=True))

    return routes


# --- ComfyUI's own queue ------------------------------------------------------------------------
# PromptQueue (ComfyUI execution.py) keeps items as tuples
#   (number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)
# in `currently_running` and `queue`; `history[prompt_id]` holds {"prompt": item[:5]+item[6:],
# "outputs": {node: ui}, "status": {"status_str", "completed", "messages": [(event, data)]}}.
# extra_data carries client_id, create_time (ms) and extra_pnginfo.workflow (the UI workflow,
# whose "id" names the workflow tab). Only item[:5] is read: never the sensitive part.


def _workflow_id(extra_data: Mapping[str, Any]) -> str | None:
    pnginfo = extra_data.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
    value = workflow.get("id") if isinstance(workflow, Mapping) else None
    return str(value) if value else None


def _base(item: Sequence[Any], status: Status) -> dict[str, Any]:
    """The JobSummary fields a queue item gives (validated by the caller)."""
    number, prompt_id, _prompt, extra_data = item[:4]
    extra = extra_data if isinstance(extra_data, Mapping) else {}
    created = extra.get("create_time")
    return {
        "prompt_id": str(prompt_id),
        "status": status,
        "client_id": extra.get("client_id") or None,
        "workflow_id": _workflow_id(extra),
        "number": float(number) if isinstance(number, int | float) else None,
        "queued_at": int(created) if isinstance(created, int | float) else None,
    }


def _queued(item: Sequence[Any], status: Status, started_at: int | None = None) -> JobSummary:
    return JobSummary.model_validate({**_base(item, status), "started_at": started_at})


def _error(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "message": data.get("exception_message", ""),
        "type": data.get("exception_type"),
        "node_id": data.get("node_id"),
        "node_type": data.get("node_type"),
    }


def _timestamp(data: Mapping[str, Any] | None) -> int | None:
    value = (data or {}).get("timestamp")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _finished(entry: Mapping[str, Any]) -> JobSummary | None:
    """A history entry as a JobSummary; None when it is not shaped like one (never raises)."""
    item = entry.get("prompt")
    status = entry.get("status") or {}  # ComfyUI records None when a prompt ended oddly
    if not isinstance(item, Sequence) or len(item) < 4 or not isinstance(status, Mapping):
        return None
    messages = [m for m in status.get("messages") or [] if isinstance(m, Sequence) and len(m) == 2]
    events = {event: data for event, data in messages if isinstance(data, Mapping)}
    state: Status = "success" if status.get("status_str") == "success" else "error"
    if "execution_interrupted" in events:
        state = "interrupted"
    outputs = entry.get("outputs")
    fields = {
        **_base(item, state),
        "started_at": _timestamp(events.get("execution_start")),
        "finished_at": next((_timestamp(events[e]) for e in _LAST_END if e in events), None),
        "error": _error(events["execution_error"]) if "execution_error" in events else None,
        "outputs": dict(outputs) if isinstance(outputs, Mapping) and outputs else None,
    }
    try:
        return JobSummary.model_validate(fields)
    except ValidationError as exc:
        log.warning("[parallel-runs] history entry %s skipped: %s", fields["prompt_id"], exc)
        return None


def _no_start(_prompt_id: str) -> int | None:
    return None


def local_jobs(
    server: Any,
    history: int = MAX_HISTORY,
    started_at: Callable[[str], int | None] = _no_start,
) -> JobSource:
    """A source reading `server.prompt_queue`: running, pending and the last `history` finished.
    `started_at(prompt_id)` tells when a running prompt started (see start_times.py)."""

    def read() -> list[JobSummary]:
        queue = server.prompt_queue
        running, pending = queue.get_current_queue_volatile()
        jobs = [_queued(item, "running", started_at(str(item[1]))) for item in running]
        jobs += [_queued(item, "queued") for item in pending]
        # map_function avoids the deep copy; entries are only read here.
        finished = queue.get_history(max_items=history, map_function=lambda entry: entry)
        for entry in finished.values():
            job = _finished(entry)
            if job is not None:
                jobs.append(job)
        return jobs

    return read
