"""ComfyUI's jobs API for a ComfyUI that has none (0.3.75), with the offloaded prompts in it:
`GET /jobs`, `GET /jobs/{job_id}`, `POST /jobs/{job_id}/cancel`, `POST /jobs/cancel`.
The newest frontend reads its queue and job list from these, and cancels through them.

Local prompts are described as ComfyUI's own jobs API describes them (`shapes`); `entries`
and `select` are shared with the wrappers of a ComfyUI that has the API (`wrappers`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...parallel_runs import safe_json
from ..responses import error_response, invalid
from .listing import JobsQuery, matches, ordered, page
from .shapes import (
    IN_PROGRESS,
    PENDING,
    client_of_item,
    in_scope,
    job_from_history,
    job_from_offloaded,
    job_from_queue_item,
    offloaded_client,
)
from .sources import CancelRefused, LocalQueue, Offloaded

# (the client id that queued it, the job)
Entry = tuple["str | None", dict[str, Any]]


class CancelJobs(BaseModel):
    """POST /jobs/cancel."""

    model_config = ConfigDict(extra="forbid")

    job_ids: list[str] = Field(max_length=1000)

    def ids(self) -> list[str]:
        return [job_id for job_id in self.job_ids if 0 < len(job_id) <= 200]


def refused(exc: CancelRefused) -> web.Response:
    return error_response(exc.status, exc.kind, exc.message)


def local_entries(local: LocalQueue) -> list[Entry]:
    """Every local prompt as a job: running, waiting, finished."""
    running, pending = local.items()
    entries: list[Entry] = [
        (client_of_item(i), job_from_queue_item(i, IN_PROGRESS)) for i in running
    ]
    entries += [(client_of_item(i), job_from_queue_item(i, PENDING)) for i in pending]
    for prompt_id, entry in local.history().items():
        job = job_from_history(str(prompt_id), entry) if isinstance(entry, Mapping) else None
        if job is not None:
            entries.append((client_of_item(entry["prompt"]), job))
    return entries


def offloaded_entries(offloaded: Offloaded | None) -> list[Entry]:
    if offloaded is None:
        return []
    return [(offloaded_client(s), job_from_offloaded(s)) for s in offloaded.summaries()]


def select(entries: Iterable[Entry], query: JobsQuery) -> dict[str, Any]:
    """The answer of GET /jobs over every known job (the first entry of an id wins)."""
    seen: dict[str, dict[str, Any]] = {}
    for client, job in entries:
        if in_scope(client, query.parallel_client) and matches(job, query):
            seen.setdefault(str(job["id"]), job)
    return page(ordered(seen.values(), query), query)


def local_detail(local: LocalQueue, job_id: str) -> dict[str, Any] | None:
    """One local prompt with what it ran (the API prompt and extra data) and, once finished,
    its outputs and recorded status."""
    running, pending = local.items()
    for items, status in ((running, IN_PROGRESS), (pending, PENDING)):
        for item in items:
            if str(item[1]) == job_id:
                job = job_from_queue_item(item, status)
                return {**job, "workflow": {"prompt": item[2], "extra_data": item[3]}}
    entry = local.history().get(job_id)
    if not isinstance(entry, Mapping):
        return None
    job = job_from_history(job_id, entry)
    if job is None:
        return None
    item = entry["prompt"]
    outputs = entry.get("outputs")
    return {
        **job,
        "outputs": dict(outputs) if isinstance(outputs, Mapping) else {},
        "execution_status": entry.get("status"),
        "workflow": {"prompt": item[2], "extra_data": item[3]},
    }


def offloaded_detail(offloaded: Offloaded | None, job_id: str) -> dict[str, Any] | None:
    summary = None if offloaded is None else offloaded.by_id().get(job_id)
    if summary is None:
        return None
    outputs = summary.get("outputs")
    job = job_from_offloaded(summary)
    return {**job, "outputs": dict(outputs) if isinstance(outputs, Mapping) else {}}


async def cancel_one(local: LocalQueue | None, offloaded: Offloaded | None, job_id: str) -> bool:
    """Stop one prompt wherever it runs; False when it is not waiting or running.
    Raises CancelRefused when its executor cannot be asked."""
    if offloaded is not None and await offloaded.cancel(job_id):
        return True
    return local.cancel(job_id) if local is not None else False


async def cancel_body(request: web.Request) -> CancelJobs | web.Response:
    """The body of POST /jobs/cancel, or the 400 answer."""
    try:
        raw = safe_json.loads(await request.text())
    except ValueError as exc:
        return error_response(400, "invalid_json", f"the body is not JSON: {exc}")
    try:
        return CancelJobs.model_validate(raw)
    except ValidationError as error:
        return invalid(error, "body", "invalid_request")


def jobs_api_routes(local: LocalQueue, offloaded: Offloaded | None) -> web.RouteTableDef:
    """The jobs API over ComfyUI's queue (`local`) and the offloaded prompts."""
    routes = web.RouteTableDef()

    @routes.get("/jobs")
    async def get_jobs(request: web.Request) -> web.Response:
        try:
            query = JobsQuery.model_validate(dict(request.query))
        except ValidationError as error:
            return invalid(error, "query", "invalid_query")
        entries = offloaded_entries(offloaded) + local_entries(local)
        return web.json_response(select(entries, query))

    @routes.get("/jobs/{job_id}")
    async def get_job(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        job = offloaded_detail(offloaded, job_id) or local_detail(local, job_id)
        if job is None:
            return error_response(404, "unknown_job", "no job has this id", "job_id")
        return web.json_response(job)

    @routes.post("/jobs/{job_id}/cancel")
    async def cancel_job(request: web.Request) -> web.Response:
        try:
            cancelled = await cancel_one(local, offloaded, request.match_info["job_id"])
        except CancelRefused as exc:
            return refused(exc)
        return web.json_response({"cancelled": cancelled})

    @routes.post("/jobs/cancel")
    async def cancel_jobs(request: web.Request) -> web.Response:
        body = await cancel_body(request)
        if isinstance(body, web.Response):
            return body
        cancelled = False
        try:
            for job_id in body.ids():
                cancelled = await cancel_one(local, offloaded, job_id) or cancelled
        except CancelRefused as exc:
            return refused(exc)
        return web.json_response({"cancelled": cancelled})

    return routes
