"""The server side of the package: routes on PromptServer and patches of its messaging."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from .executors.install import Offload, attach_offload
from .health import Feature, Health, health_routes
from .jobs.routes import JobSource, jobs_routes, local_jobs
from .patches.guard import PatchRefused, refused
from .patches.progress_scope import install_progress_scope
from .patches.queue_count import count_offloaded_in_queue
from .patches.queue_refresh import watch_offloaded_status
from .patches.start_times import StartTimes, watch_start_times
from .settings import Settings
from .stock_queue.install import StockQueue, install_stock_queue, offloaded_from

log = logging.getLogger(__name__)
_INSTALLED = "_parallel_runs_installed"


def mount(table: web.RouteTableDef, target: web.RouteTableDef) -> None:
    """Copy our route table onto ComfyUI's (which also mirrors it under /api)."""
    for route in table:
        if isinstance(route, web.RouteDef):
            target.route(route.method, route.path, **route.kwargs)(route.handler)


def _progress_text_feature(
    server: Any, settings: Settings, server_feature_flags: dict[str, Any]
) -> Feature:
    if not settings.scoped_progress_text:
        return Feature(enabled=False, detail="off (PARALLEL_RUNS_SCOPED_PROGRESS_TEXT)")
    try:
        return Feature(enabled=True, detail=install_progress_scope(server, server_feature_flags))
    except PatchRefused as reason:
        return Feature(enabled=False, detail=refused("prompt-scoped progress text", reason))


def _start_times_feature(server: Any) -> tuple[Feature, Callable[[str], int | None]]:
    """Start times of running local prompts for GET /parallel/jobs (None without them)."""
    try:
        times = watch_start_times(server, StartTimes())
    except PatchRefused as reason:
        return Feature(enabled=False, detail=refused("start times", reason)), _no_start_time
    return Feature(enabled=True, detail="from execution_start"), times.get


def _no_start_time(_prompt_id: str) -> int | None:
    return None


def _queue_refresh_feature(server: Any) -> Feature:
    """Before the relay takes send_sync: pages reload their queue lists as offloaded prompts
    change status."""
    try:
        watch_offloaded_status(server)
    except PatchRefused as reason:
        return Feature(enabled=False, detail=refused("reloading the queue lists", reason))
    return Feature(enabled=True, detail="status sent as offloaded prompts change")


def _queue_count_feature(server: Any, offload: Offload | None) -> Feature:
    """The offloaded prompts in ComfyUI's queue count (the badge, Stop, Auto Queue)."""
    if offload is None:
        return Feature(enabled=False, detail="nothing is offloaded outside ComfyUI")
    try:
        count_offloaded_in_queue(server, offload.deps.registry.active_count)
    except PatchRefused as reason:
        detail = refused("offloaded prompts in the queue count", reason)
        return Feature(enabled=False, detail=detail)
    return Feature(enabled=True, detail="queue_remaining counts offloaded prompts")


def _stock_queue_feature(server: Any, offload: Offload | None) -> tuple[Feature, StockQueue | None]:
    """Offloaded prompts in ComfyUI's own /queue and jobs API (the stock queue lists)."""
    offloaded = (
        None if offload is None else offloaded_from(offload.deps.registry, offload.deps.relay)
    )
    try:
        stock = install_stock_queue(server, offloaded)
    except PatchRefused as reason:
        return Feature(
            enabled=False, detail=refused("offloaded prompts in the queue lists", reason)
        ), None
    return Feature(enabled=True, detail=stock.detail), stock


def install(
    server: Any,
    version: str,
    server_feature_flags: dict[str, Any],
    env: Mapping[str, str] | None = None,
) -> Health:
    """Install patches and routes on the running PromptServer, once.

    `server_feature_flags` is the dict ComfyUI advertises to clients
    (`comfy_api.feature_flags.SERVER_FEATURE_FLAGS`); it is updated in place.
    """
    if getattr(server, _INSTALLED, None) is not None:
        return getattr(server, _INSTALLED)
    settings = Settings.from_env(env)
    progress_text = _progress_text_feature(server, settings, server_feature_flags)
    start_times, started_at = _start_times_feature(server)
    job_sources: list[JobSource] = [local_jobs(server, started_at=started_at)]
    queue_refresh = _queue_refresh_feature(server)
    offload = attach_offload(server, env)  # None outside ComfyUI (no folder_paths)
    if offload is None:
        offload_feature = Feature(enabled=False, detail="needs ComfyUI's folder_paths")
    else:
        offload_feature = Feature(enabled=True, detail="runpod")
        job_sources.append(offload.jobs_source)
    stock_queue, stock = _stock_queue_feature(server, offload)
    queue_count = _queue_count_feature(server, offload)
    health = Health(
        version=version,
        features={
            "scoped_progress_text": progress_text,
            "start_times": start_times,
            "offload": offload_feature,
            "queue_refresh": queue_refresh,
            "stock_queue": stock_queue,
            "queue_count": queue_count,
        },
    )
    mount(health_routes(health), server.routes)
    mount(jobs_routes(job_sources), server.routes)
    if offload is not None:
        mount(offload.routes, server.routes)
    if stock is not None and stock.routes is not None:
        mount(stock.routes, server.routes)
    setattr(server, _INSTALLED, health)
    log.info(
        "[parallel-runs] %s loaded: %s", version, {k: v.detail for k, v in health.features.items()}
    )
    return health
