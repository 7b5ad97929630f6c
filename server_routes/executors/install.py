"""Wire the offload parts together for a PromptServer (or a test's bare application).

`install_offload` builds the config, registry, output saver, the executors (RunPod today) and
the relay, and returns the routes, a jobs source for GET /parallel/jobs and the
start-up/shutdown context that opens the HTTP session, resumes unfinished jobs and cancels the
follow tasks on shutdown.

ComfyUI 0.3.75 leaves its event loop on Ctrl-C without running the app's cleanup, so in ComfyUI
the registry is also flushed from `atexit` (the last deferred changes would be lost otherwise).
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ...parallel_runs.runpod.client import RunpodClient
from ..jobs.routes import JobSummary
from .auto import AutoChooser, local_health
from .comfyui.executor import ComfyuiExecutor
from .comfyui.servers import ComfyServers
from .contract import Health
from .outputs import OutputSaver
from .registry import JobRegistry
from .relay import Relay, Send, server_recipients
from .routes import OffloadDeps, offload_routes
from .runpod.config import OffloadConfig
from .runpod.executor import RETRY_DELAYS, MissingApiKey, RunpodExecutor
from .runpod.poll_planner import PollPlanner
from .state_files import state_directory, write_private

REGISTRY_FILE = "offload_jobs.sqlite3"
LEGACY_REGISTRY_FILE = "offload_jobs.json"  # the JSON registry of earlier versions: imported once
AtExit = Callable[[Callable[[], None]], object]  # atexit.register's shape
# Test-only tuning, never for production: a factor (0.01-1) on the RunPod relay's waits (its
# status-poll pacing and budget, its back-off after a failed poll), so that tests of a RunPod
# that fails and then recovers, which run this package inside a real ComfyUI, need not wait
# production's seconds. Unset or invalid: production values.
TIME_SCALE_ENV = "PARALLEL_RUNS_TEST_TIME_SCALE"


@dataclass
class _Session:
    """The shared aiohttp session, open between start-up and shutdown."""

    session: aiohttp.ClientSession | None = None


@dataclass
class Offload:
    routes: web.RouteTableDef
    jobs_source: Callable[[], list[JobSummary]]
    cleanup_ctx: Callable[[web.Application], AsyncIterator[None]]
    deps: OffloadDeps


def _comfy_defaults() -> dict[str, Any]:
    """ComfyUI's folders, node classes and --listen value (imported lazily: only in ComfyUI)."""
    import folder_paths
    from comfy.cli_args import args

    import nodes

    return {
        "user_dir": Path(folder_paths.get_user_directory()),
        "folders": {
            "input": Path(folder_paths.get_input_directory()),
            "output": Path(folder_paths.get_output_directory()),
            "temp": Path(folder_paths.get_temp_directory()),
        },
        "node_classes": nodes.NODE_CLASS_MAPPINGS,
        "listen": args.listen or "127.0.0.1",
    }


def stable_client_id(state: Path) -> Callable[[str], str]:
    """This ComfyUI's client id on another ComfyUI server, the same after a restart (the remote
    sends a prompt's events to the client id that queued it): kept in the private folder."""
    path = state / "client_id"
    try:
        own = path.read_text("utf-8").strip()
    except OSError:
        own = ""
    if not re.fullmatch(r"[0-9a-f]{32}", own):
        own = uuid.uuid4().hex
        write_private(path, own)
    return lambda name: f"parallel-runs-{own}-{name}"


def scaled_runpod_options(env: Mapping[str, str] | None) -> dict[str, Any]:
    """The RunPod executor's options under TIME_SCALE_ENV (test-only): {} when it is unset."""
    try:
        scale = float(dict(os.environ if env is None else env).get(TIME_SCALE_ENV) or 1.0)
    except ValueError:
        return {}
    if math.isnan(scale) or scale >= 1.0:
        return {}
    scale = max(scale, 0.01)
    usual = PollPlanner()
    planner = functools.partial(
        PollPlanner,
        rate=usual.rate / scale,
        near=usual.near * scale,
        queue_first=usual.queue_first * scale,
        queue_max=usual.queue_max * scale,
        running_default=usual.running_default * scale,
        running_max=usual.running_max * scale,
    )
    first, longest = RETRY_DELAYS
    return {"planner": planner, "retry_delays": (first * scale, longest * scale)}


def install_offload(
    server: Any,
    *,
    env: Mapping[str, str] | None = None,
    user_dir: Path | None = None,
    folders: Mapping[str, Path] | None = None,
    node_classes: Mapping[str, Any] | None = None,
    listen: str | None = None,
    send: Send | None = None,
    saver: OutputSaver | None = None,
    runpod_options: Mapping[str, Any] | None = None,
    comfyui_options: Mapping[str, Any] | None = None,
    client_options: Mapping[str, Any] | None = None,
    at_exit: AtExit | None = None,
) -> Offload:
    """Everything offload needs; ComfyUI's own values are used for what is not given.
    `runpod_options` go to the RunPod executor (its clock, retry delays, ...), `client_options`
    to each RunPod client. `at_exit` (atexit.register in ComfyUI) gets the registry's flush for
    process exit."""
    if user_dir is None or folders is None or node_classes is None or listen is None:
        defaults = _comfy_defaults()
        user_dir = user_dir or defaults["user_dir"]
        folders = folders or defaults["folders"]
        node_classes = defaults["node_classes"] if node_classes is None else node_classes
        listen = listen or defaults["listen"]
    state = state_directory(user_dir)
    config = OffloadConfig(state, env=env, listen=listen)
    registry = JobRegistry(state / REGISTRY_FILE, migrate_from=state / LEGACY_REGISTRY_FILE)
    if at_exit is not None:
        at_exit(registry.flush)  # a no-op when everything is on disk, so harmless twice
    holder = _Session()

    def clients() -> RunpodClient:
        key = config.api_key()
        if not key:
            raise MissingApiKey()
        if holder.session is None:
            raise RuntimeError("offload is not started (no HTTP session)")
        options = {"timeout": config.remote_timeout, **dict(client_options or {})}
        return RunpodClient(holder.session, key, config.base_url, **options)

    runpod = RunpodExecutor(config, clients, **dict(runpod_options or {}))
    servers = ComfyServers(state, env)
    comfyui = ComfyuiExecutor(
        servers, config, stable_client_id(state), **dict(comfyui_options or {})
    )
    relay = Relay(
        registry,
        saver or OutputSaver(Path(folders["output"])),
        send or server.send_sync,
        {runpod.kind: runpod, comfyui.kind: comfyui},
        # in ComfyUI: previews go by each connected client's own feature flags
        recipients=server_recipients(server) if send is None else None,
    )
    queue = getattr(server, "prompt_queue", None)  # ComfyUI's own queue (not on a bare app)

    async def local() -> Health:
        return local_health(queue)

    auto = AutoChooser(relay.executors, local if queue is not None else None)
    deps = OffloadDeps(config, registry, relay, node_classes, folders, servers=servers, auto=auto)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        holder.session = aiohttp.ClientSession(trust_env=False)
        try:
            await relay.resume()
            yield
        finally:
            await relay.close()
            await comfyui.close()
            await holder.session.close()
            holder.session = None

    def jobs_source() -> list[JobSummary]:
        return [JobSummary.model_validate(summary) for summary in registry.summaries()]

    return Offload(offload_routes(deps), jobs_source, lifecycle, deps)


def attach_offload(server: Any, env: Mapping[str, str] | None = None) -> Offload | None:
    """In ComfyUI: build offload and hook its start-up/shutdown into the server's app (not
    frozen while custom nodes load). Outside ComfyUI (no folder_paths): None."""
    try:
        defaults = _comfy_defaults()
    except ImportError:
        return None
    offload = install_offload(
        server,
        env=env,
        at_exit=atexit.register,
        runpod_options=scaled_runpod_options(env),
        **defaults,
    )
    server.app.cleanup_ctx.append(offload.cleanup_ctx)
    return offload
