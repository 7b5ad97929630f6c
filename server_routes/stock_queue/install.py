"""Put the offloaded prompts into a running ComfyUI's own lists: wrap its list and cancel
routes, and serve the jobs API where it has none.

ComfyUI 0.3.75 has `/queue`, `/history` and `/interrupt` but no jobs API: the package serves
`/jobs` (ComfyUI mirrors it under `/api/jobs`, where the newest frontend asks). A ComfyUI
that has the jobs API (>= 0.4, registered as `/api/jobs`) gets its handlers wrapped instead.
If a route is missing or not as expected, none of them is changed and `/parallel/health` says
why (the stock lists then show local prompts only, as without the package)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..executors.contract import ExecutorRefused
from ..executors.registry import JobRegistry
from ..executors.relay import Relay, StillSubmitting
from ..patches.guard import PatchRefused
from ..patches.route_handlers import RouteWrap, find_route, wrap_routes
from .jobs_api import jobs_api_routes
from .sources import CancelRefused, LocalQueue, Offloaded
from .wrappers import (
    wrap_cancel_job,
    wrap_cancel_jobs,
    wrap_get_history,
    wrap_get_job,
    wrap_get_jobs,
    wrap_get_queue,
    wrap_post_history,
    wrap_post_interrupt,
    wrap_post_queue,
)

JOBS_PATHS = ("/api/jobs", "/jobs")  # how ComfyUI >= 0.4 spells it first


def _api(path: str) -> tuple[str, ...]:
    return (f"/api{path}", path)


def no_offloaded() -> Offloaded:
    """Outside ComfyUI (no offload): nothing is offloaded, the lists still follow the scope."""

    async def unknown(prompt_id: str) -> None:
        raise KeyError(prompt_id)

    def keep(_prompt_id: str) -> None:
        return None

    return Offloaded(list, unknown, keep)


def offloaded_from(registry: JobRegistry, relay: Relay) -> Offloaded:
    """The offload registry and relay as the list routes use them."""

    async def cancel(prompt_id: str) -> None:
        try:
            await relay.cancel(prompt_id)
        except StillSubmitting:
            raise CancelRefused(
                409, "submitting", "the prompt is still being submitted; cancel again in a moment"
            ) from None
        except ExecutorRefused as exc:
            raise CancelRefused(exc.status, exc.kind, exc.message) from None

    return Offloaded(registry.summaries, cancel, registry.remove)


def comfy_interrupt() -> None:
    """ComfyUI's own interrupt of the running prompt (imported here: only in ComfyUI)."""
    import nodes

    nodes.interrupt_processing()


@dataclass
class StockQueue:
    """What install did: a word for /parallel/health, and the routes to mount (the jobs API,
    when ComfyUI has none)."""

    detail: str
    routes: web.RouteTableDef | None


def install_stock_queue(
    server: Any,
    offloaded: Offloaded | None,
    interrupt: Callable[[], None] = comfy_interrupt,
) -> StockQueue:
    """Wrap the server's list routes (all or none). PatchRefused when it has no prompt queue
    or one of its routes is not as expected."""
    queue = getattr(server, "prompt_queue", None)
    if queue is None:
        raise PatchRefused("this ComfyUI has no prompt_queue")
    table = getattr(server, "routes", None)
    local, remote = LocalQueue(queue, interrupt), offloaded or no_offloaded()
    wraps = [
        RouteWrap("GET", ("/queue",), wrap_get_queue(remote)),
        RouteWrap("POST", ("/queue",), wrap_post_queue(local, remote)),
        RouteWrap("POST", ("/interrupt",), wrap_post_interrupt(remote)),
        RouteWrap("GET", ("/history",), wrap_get_history(remote)),
        RouteWrap("POST", ("/history",), wrap_post_history(local, remote)),
    ]
    core_jobs = find_route(table, "GET", JOBS_PATHS) is not None
    if core_jobs:
        wraps += [
            RouteWrap("GET", JOBS_PATHS, wrap_get_jobs(local, remote)),
            RouteWrap("GET", _api("/jobs/{job_id}"), wrap_get_job(remote), optional=True),
            RouteWrap("POST", _api("/jobs/{job_id}/cancel"), wrap_cancel_job(remote), True),
            RouteWrap("POST", _api("/jobs/cancel"), wrap_cancel_jobs(remote), optional=True),
        ]
    wrapped = wrap_routes(table, wraps)
    jobs = "ComfyUI's jobs API wrapped" if core_jobs else "jobs API served by the package"
    return StockQueue(
        detail=f"{jobs}; wrapped {', '.join(wrapped)}",
        routes=None if core_jobs else jobs_api_routes(local, remote),
    )
