"""ComfyUI's own list and cancel routes, wrapped so that they also list and act on the prompts
that run on other executors, and honour `parallel_client=<client id>`.

Each `wrap_*` takes ComfyUI's handler and returns the handler that replaces it (see
`patches.route_handlers`). What ComfyUI answers for its own prompts is kept; only offloaded
prompts are added, and other clients' prompts left out when `parallel_client` is given.
- `GET /queue`: offloaded prompts that wait or run join `queue_pending` / `queue_running`.
- `POST /queue {delete: [ids]}` stops offloaded ones among the ids; `{clear: true}` also stops
  the offloaded prompts that wait; with `parallel_client` it clears that client's only.
- `POST /interrupt {prompt_id}` stops that prompt when it runs elsewhere.
- `GET /history?parallel_client=`: that client's finished prompts only. `POST /history
  {delete, clear}` also forgets finished offloaded prompts (the jobs API lists them).
- The jobs API, where ComfyUI has it (>= 0.4): offloaded jobs merged into its answer before the
  page is cut; cancel by id reaches offloaded prompts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..responses import invalid
from .jobs_api import (
    Entry,
    cancel_body,
    offloaded_detail,
    offloaded_entries,
    refused,
    select,
)
from .listing import PAGE_PARAMS, JobsQuery, client_only
from .shapes import (
    IN_PROGRESS,
    PENDING,
    client_of_item,
    in_scope,
    is_active,
    job_from_offloaded,
    offloaded_client,
    queue_item_from_offloaded,
)
from .sources import CancelRefused, LocalQueue, Offloaded

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Wrap = Callable[[Handler], Handler]


def answer_json(response: web.StreamResponse) -> Any:
    """The JSON a handler answered with (200, a JSON body), or None (then it is passed on)."""
    if not isinstance(response, web.Response) or response.status != 200:
        return None
    if response.content_type != "application/json" or not isinstance(response.body, bytes):
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


async def body_of(request: web.Request) -> Mapping[str, Any]:
    """A POST's JSON object, or {} (ComfyUI's handler, which reads it again, says what is
    wrong with it)."""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def ids_in(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and 0 < len(item) <= 200]


ScopedHandler = Callable[[web.Request, str | None], Awaitable[web.StreamResponse]]


def scoped(handler: ScopedHandler) -> Handler:
    """`handler`, also given the request's `parallel_client` (None: every client); a bad one is
    answered with a 400 here, before ComfyUI's handler is reached."""

    async def checked(request: web.Request) -> web.StreamResponse:
        try:
            only = client_only(request.query)
        except ValidationError as error:
            return invalid(error, "query", "invalid_query")
        return await handler(request, only)

    return checked


async def cancel_all(offloaded: Offloaded, prompt_ids: list[str]) -> CancelRefused | None:
    """Stop each offloaded prompt of `prompt_ids` that waits or runs; the first refusal, if
    any (the others are still asked)."""
    first: CancelRefused | None = None
    for prompt_id in prompt_ids:
        try:
            await offloaded.cancel(prompt_id)
        except CancelRefused as exc:
            first = first or exc
    return first


def wrap_get_queue(offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        @scoped
        async def get_queue(request: web.Request, only: str | None) -> web.StreamResponse:
            response = await original(request)
            data = answer_json(response)
            if not isinstance(data, dict):
                return response
            lists = {key: data.get(key) for key in ("queue_running", "queue_pending")}
            if not all(isinstance(items, list) for items in lists.values()):
                return response
            running = [i for i in lists["queue_running"] if in_scope(client_of_item(i), only)]
            pending = [i for i in lists["queue_pending"] if in_scope(client_of_item(i), only)]
            for summary in offloaded.summaries():
                if not is_active(summary) or not in_scope(offloaded_client(summary), only):
                    continue
                target = (
                    running if job_from_offloaded(summary)["status"] == IN_PROGRESS else pending
                )
                target.append(queue_item_from_offloaded(summary))
            return web.json_response({**data, "queue_running": running, "queue_pending": pending})

        return get_queue

    return wrap


def _scoped_pending(offloaded: Offloaded, only: str | None) -> list[str]:
    return [
        str(s["prompt_id"])
        for s in offloaded.summaries()
        if job_from_offloaded(s)["status"] == PENDING and in_scope(offloaded_client(s), only)
    ]


def wrap_post_queue(local: LocalQueue, offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        @scoped
        async def post_queue(request: web.Request, only: str | None) -> web.StreamResponse:
            body = await body_of(request)
            deleted = ids_in(body, "delete")
            stop = list(deleted)
            if body.get("clear"):
                stop += _scoped_pending(offloaded, only)
            problem = await cancel_all(offloaded, stop)
            if body.get("clear") and only is not None:
                # this client's waiting prompts only, not the whole queue as ComfyUI would
                _, pending = local.items()
                mine = [str(i[1]) for i in pending if client_of_item(i) == only]
                for prompt_id in [*deleted, *mine]:
                    local.dequeue(prompt_id)
                response: web.StreamResponse = web.Response(status=200)
            else:
                response = await original(request)
            return refused(problem) if problem is not None else response

        return post_queue

    return wrap


def wrap_post_interrupt(offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        async def post_interrupt(request: web.Request) -> web.StreamResponse:
            prompt_id = (await body_of(request)).get("prompt_id")
            if isinstance(prompt_id, str) and prompt_id in _active_ids(offloaded):
                try:
                    await offloaded.cancel(prompt_id)
                except CancelRefused as exc:
                    return refused(exc)
                return web.Response(status=200)
            return await original(request)

        return post_interrupt

    return wrap


def _active_ids(offloaded: Offloaded) -> set[str]:
    return {pid for pid, summary in offloaded.by_id().items() if is_active(summary)}


def wrap_get_history(_offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        @scoped
        async def get_history(request: web.Request, only: str | None) -> web.StreamResponse:
            response = await original(request)
            data = answer_json(response) if only is not None else None
            if not isinstance(data, dict):
                return response
            return web.json_response(
                {
                    prompt_id: entry
                    for prompt_id, entry in data.items()
                    if isinstance(entry, Mapping)
                    and isinstance(entry.get("prompt"), list)
                    and client_of_item(entry["prompt"]) == only
                }
            )

        return get_history

    return wrap


def wrap_post_history(local: LocalQueue, offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        @scoped
        async def post_history(request: web.Request, only: str | None) -> web.StreamResponse:
            body = await body_of(request)
            deleted = ids_in(body, "delete")
            forget = list(deleted)
            if body.get("clear"):
                forget += [
                    pid
                    for pid, summary in offloaded.by_id().items()
                    if in_scope(offloaded_client(summary), only)
                ]
            offloaded.forget(forget)  # finished ones only
            if body.get("clear") and only is not None:
                clients = local.clients()
                mine = [pid for pid in local.history() if clients.get(str(pid)) == only]
                for prompt_id in [*deleted, *mine]:
                    local.forget(prompt_id)
                return web.Response(status=200)
            return await original(request)

        return post_history

    return wrap


# --- the jobs API of a ComfyUI that has it -------------------------------------------------------


def wrap_get_jobs(local: LocalQueue, offloaded: Offloaded) -> Wrap:
    """ComfyUI's list, asked for every job that passes its filters (no page), then merged
    with the offloaded jobs, filtered by client, ordered and cut into the page asked for."""

    def wrap(original: Handler) -> Handler:
        async def get_jobs(request: web.Request) -> web.StreamResponse:
            try:
                query = JobsQuery.model_validate(dict(request.query))
            except ValidationError as error:
                return invalid(error, "query", "invalid_query")
            unpaged = {k: v for k, v in request.query.items() if k not in PAGE_PARAMS}
            response = await original(request.clone(rel_url=request.rel_url.with_query(unpaged)))
            data = answer_json(response)
            jobs = data.get("jobs") if isinstance(data, dict) else None
            if not isinstance(jobs, list):
                return response
            clients = local.clients()
            entries: list[Entry] = offloaded_entries(offloaded) + [
                (clients.get(str(job.get("id"))), job) for job in jobs if isinstance(job, dict)
            ]
            return web.json_response(select(entries, query))

        return get_jobs

    return wrap


def wrap_get_job(offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        async def get_job(request: web.Request) -> web.StreamResponse:
            job = offloaded_detail(offloaded, request.match_info.get("job_id", ""))
            return web.json_response(job) if job is not None else await original(request)

        return get_job

    return wrap


def wrap_cancel_job(offloaded: Offloaded) -> Wrap:
    def wrap(original: Handler) -> Handler:
        async def cancel_job(request: web.Request) -> web.StreamResponse:
            try:
                if await offloaded.cancel(request.match_info.get("job_id", "")):
                    return web.json_response({"cancelled": True})
            except CancelRefused as exc:
                return refused(exc)
            return await original(request)

        return cancel_job

    return wrap


def wrap_cancel_jobs(offloaded: Offloaded) -> Wrap:
    """Offloaded ids are stopped here; ComfyUI's handler gets the whole request (an id it does
    not know is a no-op there) and both answers are joined."""

    def wrap(original: Handler) -> Handler:
        async def cancel_jobs(request: web.Request) -> web.StreamResponse:
            body = await cancel_body(request)
            if isinstance(body, web.Response):
                return await original(request)  # ComfyUI's own 400 for its own API
            active = _active_ids(offloaded)
            mine = [job_id for job_id in body.ids() if job_id in active]
            problem = await cancel_all(offloaded, mine)
            if problem is not None:
                return refused(problem)
            response = await original(request)
            data = answer_json(response)
            if not isinstance(data, dict) or not mine:
                return response
            return web.json_response({**data, "cancelled": True})

        return cancel_jobs

    return wrap
