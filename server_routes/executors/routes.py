"""`/parallel/offload/...`: queue a prompt on another executor (`"runpod:<endpoint>"`), cancel
it, list the offloaded jobs, read/write the offload settings (the API key is write-only); and
`/parallel/executors`: which executors there are and how busy each is.

Everything a request carries is validated before any network call; a refused request changes
nothing. Errors answer `{"error": {"type", "message", "field"?}}`. Every POST passes the
`OffloadGuard` first: only a JSON request from this machine, addressed to it by a loopback name,
may send prompts out or change the key and endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...parallel_runs import safe_json
from ...parallel_runs.safe_json import JsonTooDeep
from ...parallel_runs.validation import first_problem
from .auto import AutoChooser
from .comfyui.servers import NAME_PATTERN, BadServer, ComfyServers
from .contract import EXECUTOR_RE, LOCAL, ExecutorRefused, PromptJob, split_executor
from .records import JobRecord
from .registry import JobRegistry
from .relay import Relay, StillSubmitting
from .runpod.config import (
    ALLOW_REMOTE_ENV,
    ENDPOINT_ID_PATTERN,
    EnvKeyLocked,
    OffloadConfig,
    is_loopback_host,
)

NODE_ID_PATTERN = r"^[A-Za-z0-9_:.-]{1,64}$"
IMAGE_OUTPUTS = ("SaveImage", "PreviewImage")


class PromptNode(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    class_type: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] | None = Field(default=None, alias="_meta")


class OffloadPrompt(BaseModel):
    """POST /parallel/offload/prompt."""

    model_config = ConfigDict(extra="forbid")

    prompt: dict[str, PromptNode] = Field(min_length=1, max_length=5000)
    client_id: str = Field(min_length=1, max_length=200)
    executor: str | None = Field(default=None, pattern=EXECUTOR_RE.pattern)
    endpoint_id: str | None = Field(default=None, pattern=ENDPOINT_ID_PATTERN)  # older form
    extra_data: dict[str, Any] | None = None

    def executor_choice(self) -> tuple[str, str | None]:
        """(kind, name): `executor` as given, else the older `endpoint_id` (a RunPod one),
        else RunPod's configured endpoint."""
        if self.executor is not None:
            kind, name = split_executor(self.executor)
            if self.endpoint_id is not None and (kind, name) != ("runpod", self.endpoint_id):
                raise RequestError(
                    400,
                    "invalid_request",
                    "give either executor or endpoint_id, not both",
                    "endpoint_id",
                )
            return kind, name
        return "runpod", self.endpoint_id


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_id: str = Field(min_length=1, max_length=200)


class ConfigUpdate(BaseModel):
    """POST /parallel/offload/config; `""` clears a value."""

    model_config = ConfigDict(extra="forbid")

    endpoint_id: str | None = Field(default=None, pattern=ENDPOINT_ID_PATTERN + "|^$")
    api_key: str | None = Field(default=None, max_length=512, pattern=r"^[\x21-\x7e]*$")


class ServerUpdate(BaseModel):
    """POST /parallel/executors/comfyui: add or change (`url`) or remove (`url: null`) a named
    ComfyUI server; `auth` is the Authorization header a proxy in front of it wants ("" clears
    it, left out keeps it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    url: str | None = Field(max_length=500)
    auth: str | None = Field(default=None, max_length=4096, pattern=r"^[\x20-\x7e]*$")


class AutoRequest(BaseModel):
    """POST /parallel/executors/choose: where Auto would run a prompt now. `allowed` limits the
    candidates (executor ids, "local" for this ComfyUI; none: every configured one);
    `paid_after` is the wait in seconds of the free ones past which RunPod may be used
    (none or 0: never)."""

    model_config = ConfigDict(extra="forbid")

    allowed: list[str] | None = Field(default=None, max_length=100)
    paid_after: float | None = Field(default=None, ge=0, le=86400)


class RequestError(Exception):
    """An answer other than 200, with the error body the UI shows."""

    def __init__(self, status: int, kind: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field

    def response(self) -> web.Response:
        error = {"type": self.kind, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return web.json_response({"error": error}, status=self.status)


JSON_TYPE = "application/json"
Handler = Callable[[web.Request], Awaitable[web.Response]]


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's Origin names the server the Host header addresses (host and port;
    "null" and malformed origins never match)."""
    try:
        source, target = urlsplit(origin), urlsplit(f"//{host}")
        default = {"http": 80, "https": 443}.get(source.scheme)
        source_port, target_port = source.port or default, target.port or default
    except ValueError:
        return False
    return (
        default is not None
        and source.hostname is not None
        and source.hostname == target.hostname
        and source_port == target_port
    )


def _refused(message: str) -> RequestError:
    return RequestError(403, "forbidden", message)


@dataclass(frozen=True)
class OffloadGuard:
    """Who may write: offload spends the user's RunPod credit and sends their prompts and input
    files to whatever endpoint and key are configured.

    ComfyUI checks Origin only for loopback Host headers and not at all with
    --enable-cors-header, so this guard stands on its own:
    - the peer must be this machine (no other machine);
    - the Host header must be a name this server answers to: a loopback name, or with the
      remote opt-in also an IP address or a name listed in PARALLEL_RUNS_ALLOWED_HOSTS (a
      DNS-rebinding page always addresses the server by the attacker's own domain name);
    - a browser's Origin must be the same host and port (no other site, even with CORS open);
    - the body must be declared JSON (a cross-site form cannot send that without a preflight).
    The remote opt-in lifts the first check only. Settings from another machine must also come
    from ComfyUI's own page (an Origin that matches); settings are refused while offload
    itself is not allowed."""

    config: OffloadConfig

    def check(self, request: web.Request, *, settings: bool = False) -> None:
        """Raise RequestError (403/415) unless `request` may change offload state."""
        local_peer = is_loopback_host(request.remote)
        if not local_peer and not self.config.allow_remote:
            raise _refused(
                "offload accepts requests from this machine only; set "
                f"{ALLOW_REMOTE_ENV}=1 in ComfyUI's environment to allow other machines"
            )
        host = request.headers.get("Host", "")
        if not self.config.host_allowed(urlsplit(f"//{host}").hostname):
            raise _refused(
                f"offload requests must address ComfyUI by {self.config.host_rule()}, not "
                f"{host[:100]!r}"
            )
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, host):
            raise _refused(
                f"offload requests are accepted from ComfyUI's own page only, not from "
                f"{origin[:100]!r}"
            )
        if settings and origin is None and not local_peer:
            raise _refused(
                "offload settings can be changed from another machine only on ComfyUI's own "
                "page (the request has no Origin)"
            )
        if settings and not self.config.allowed:
            raise RequestError(403, "offload_refused", self.config.allowed_detail())
        if request.content_type != JSON_TYPE:
            raise RequestError(
                415,
                "unsupported_media_type",
                f"send the body as JSON with 'Content-Type: {JSON_TYPE}'",
            )


@dataclass(frozen=True)
class OffloadDeps:
    """What the routes need; built by `offload.install_offload`, or by tests."""

    config: OffloadConfig
    registry: JobRegistry
    relay: Relay
    node_classes: Mapping[str, Any]  # ComfyUI's nodes.NODE_CLASS_MAPPINGS (filled in place)
    folders: Mapping[str, Path]  # "input" / "output" / "temp"
    guard: OffloadGuard | None = None  # None: an OffloadGuard over `config`
    auto: AutoChooser | None = None  # None: Auto is not offered
    servers: ComfyServers | None = None  # the named ComfyUI servers (settings routes)


def _first_validation_error(exc: ValidationError) -> RequestError:
    field, message = first_problem(exc, "body")
    return RequestError(400, "invalid_request", message, field)


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        raw = safe_json.loads(await request.text())
    except JsonTooDeep as exc:
        raise RequestError(400, "invalid_json", f"the body is {exc}") from None
    except ValueError as exc:
        raise RequestError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _first_validation_error(exc) from None


def check_prompt(
    prompt: Mapping[str, PromptNode], node_classes: Mapping[str, Any] | None
) -> str | None:
    """Node ids and links; with `node_classes` also that each node type is installed and the
    prompt has an output. Returns the node that shows image outputs (None without classes)."""
    outputs: list[str] = []
    for node_id, node in prompt.items():
        field = f"prompt.{node_id}"
        if not re.match(NODE_ID_PATTERN, node_id):
            raise RequestError(400, "invalid_prompt", f"bad node id {node_id!r}", field)
        for name, value in node.inputs.items():
            link = isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)
            if link and str(value[0]) not in prompt:
                raise RequestError(
                    400,
                    "invalid_prompt",
                    f"node {node_id}: input {name!r} is linked to "
                    f"node {value[0]!r}, which is not in the prompt",
                    f"{field}.inputs.{name}",
                )
        if node_classes is None:
            continue  # the executor checks node types against the server that runs it
        cls = node_classes.get(node.class_type)
        if cls is None:
            raise RequestError(
                400,
                "unknown_node",
                f"node {node_id}: node type {node.class_type!r} is not installed on this ComfyUI",
                f"{field}.class_type",
            )
        if getattr(cls, "OUTPUT_NODE", False):
            outputs.append(node_id)
    if node_classes is None:
        return None
    if not outputs:
        raise RequestError(400, "no_output", "the prompt has no output node (such as SaveImage)")
    images = [n for n in outputs if prompt[n].class_type in IMAGE_OUTPUTS]
    return (images or outputs)[0]


def _workflow_id(extra_data: Mapping[str, Any] | None) -> str | None:
    workflow = ((extra_data or {}).get("extra_pnginfo") or {}).get("workflow") or {}
    value = workflow.get("id") if isinstance(workflow, Mapping) else None
    return str(value) if value is not None else None


def refused(exc: ExecutorRefused, field_name: str = "executor") -> RequestError:
    """An executor's refusal as the routes answer it; `field_name` is what the request called
    the executor (the older requests named a RunPod `endpoint_id`)."""
    field = field_name if exc.field == "executor" else exc.field
    return RequestError(exc.status, exc.kind, exc.message, field)


async def submit_prompt(body: OffloadPrompt, deps: OffloadDeps) -> JobRecord:
    """Validate everything, then hand the job to the relay. Raises RequestError."""
    kind, name = body.executor_choice()
    named = "executor" if body.executor is not None else "endpoint_id"
    if kind == LOCAL:
        raise RequestError(
            400, "local_executor", "local prompts go to ComfyUI's own /prompt", named
        )
    if kind == "auto":
        raise RequestError(
            400,
            "auto_unresolved",
            "Auto is chosen per prompt: ask POST /parallel/executors/choose, then queue the "
            "prompt where it says (this ComfyUI's own /prompt for 'local')",
            named,
        )
    executor = deps.relay.executors.get(kind)
    if executor is None:
        known = ", ".join(sorted(deps.relay.executors)) or "none"
        raise RequestError(
            400, "unknown_executor", f"no executor kind {kind!r} (known: {known})", named
        )
    try:
        executor_id = executor.resolve(name)
        local_nodes = deps.node_classes if executor.checks_local_nodes else None
        output_node = check_prompt(body.prompt, local_nodes)
        prompt = {
            node_id: node.model_dump(by_alias=True, exclude_none=True)
            for node_id, node in body.prompt.items()
        }
        job = PromptJob(prompt, deps.folders, body.extra_data)
        prepared = await executor.prepare(executor_id, job)
        record = JobRecord(
            prompt_id=str(uuid.uuid4()),
            executor=executor_id,
            client_id=body.client_id,
            workflow_id=_workflow_id(body.extra_data),
            node_types={nid: node.class_type for nid, node in body.prompt.items()},
            output_node=output_node,
        )
        record = await deps.relay.submit(record, prepared)
    except ExecutorRefused as exc:
        raise refused(exc, named) from None
    # Answer only once the prompt -> job mapping is on disk: a ComfyUI stopped right after
    # must still follow the job it said it queued. A failed write is logged by the registry;
    # the job runs and is followed all the same.
    with contextlib.suppress(OSError):
        await deps.registry.saved()
    return record


def _apply_settings(config: OffloadConfig, body: ConfigUpdate) -> None:
    if body.api_key is not None:
        config.set_api_key(body.api_key)
    if body.endpoint_id is not None:
        config.set_endpoint_id(body.endpoint_id)


def offload_routes(deps: OffloadDeps) -> web.RouteTableDef:
    routes = web.RouteTableDef()
    guard = deps.guard or OffloadGuard(deps.config)
    settings_lock = asyncio.Lock()  # one settings write at a time: file and cache agree
    auto = deps.auto or AutoChooser(deps.relay.executors, None)

    def guarded(*, settings: bool = False) -> Callable[[Handler], Handler]:
        def wrap(handler: Handler) -> Handler:
            async def checked(request: web.Request) -> web.Response:
                try:
                    guard.check(request, settings=settings)
                except RequestError as exc:
                    return exc.response()
                return await handler(request)

            return checked

        return wrap

    @routes.post("/parallel/offload/prompt")
    @guarded()
    async def post_prompt(request: web.Request) -> web.Response:
        try:
            record = await submit_prompt(await _body(request, OffloadPrompt), deps)
        except RequestError as exc:
            return exc.response()
        return web.json_response({"prompt_id": record.prompt_id})

    @routes.post("/parallel/offload/cancel")
    @guarded()
    async def post_cancel(request: web.Request) -> web.Response:
        try:
            body = await _body(request, CancelRequest)
            record = await deps.relay.cancel(body.prompt_id)
        except RequestError as exc:
            return exc.response()
        except KeyError:
            return RequestError(
                404, "unknown_prompt", "no offloaded prompt has this id", "prompt_id"
            ).response()
        except StillSubmitting:
            return RequestError(
                409, "submitting", "the prompt is still being submitted; cancel again in a moment"
            ).response()
        except ExecutorRefused as exc:
            return refused(exc).response()
        return web.json_response({"prompt_id": record.prompt_id, "status": record.status})

    @routes.get("/parallel/offload/jobs")
    async def get_jobs(_request: web.Request) -> web.Response:
        jobs = [
            {
                **r.summary(),
                "job_id": r.job_id,
                "endpoint_id": r.target if r.kind == "runpod" else None,  # the older field
                "remote_status": r.remote_status,
            }
            for r in deps.registry.all()
        ]
        return web.json_response({"jobs": jobs})

    @routes.get("/parallel/executors")
    async def get_executors(_request: web.Request) -> web.Response:
        """Every usable executor (this ComfyUI first) with its health: reachable, queue,
        estimated wait."""
        healths = await auto.healths(None)
        listed = [
            {"executor": h.executor, "kind": h.executor.partition(":")[0], "health": asdict(h)}
            for h in healths
        ]
        if not any(h.executor == LOCAL for h in healths):
            listed.insert(0, {"executor": LOCAL, "kind": LOCAL})
        return web.json_response({"executors": listed})

    @routes.post("/parallel/executors/choose")
    @guarded()
    async def post_choose(request: web.Request) -> web.Response:
        try:
            body: AutoRequest = await _body(request, AutoRequest)
        except RequestError as exc:
            return exc.response()
        allowed = set(body.allowed) if body.allowed is not None else None
        choice = await auto.choose(allowed, body.paid_after)
        if choice is None:
            return RequestError(
                409, "no_executor", "Auto found no executor that can run a prompt now"
            ).response()
        return web.json_response({"executor": choice.executor, "waits": choice.waits})

    def servers_view() -> web.Response:
        servers = deps.servers.view() if deps.servers is not None else []
        return web.json_response({"servers": [server.model_dump() for server in servers]})

    @routes.get("/parallel/executors/comfyui")
    async def get_servers(_request: web.Request) -> web.Response:
        return servers_view()

    @routes.post("/parallel/executors/comfyui")
    @guarded(settings=True)
    async def post_servers(request: web.Request) -> web.Response:
        if deps.servers is None:
            return RequestError(404, "not_available", "no ComfyUI servers here").response()
        try:
            body: ServerUpdate = await _body(request, ServerUpdate)
            async with settings_lock:  # the writes fsync: off the event loop
                await asyncio.to_thread(deps.servers.set_server, body.name, body.url, body.auth)
        except RequestError as exc:
            return exc.response()
        except BadServer as exc:
            return RequestError(400, "invalid_server", str(exc), "url").response()
        return servers_view()

    @routes.get("/parallel/offload/config")
    async def get_config(_request: web.Request) -> web.Response:
        return web.json_response(deps.config.view().model_dump())

    @routes.post("/parallel/offload/config")
    @guarded(settings=True)
    async def post_config(request: web.Request) -> web.Response:
        try:
            body: ConfigUpdate = await _body(request, ConfigUpdate)
            async with settings_lock:  # the writes fsync: off the event loop
                await asyncio.to_thread(_apply_settings, deps.config, body)
        except RequestError as exc:
            return exc.response()
        except EnvKeyLocked as exc:
            return RequestError(409, "key_from_env", str(exc), "api_key").response()
        return web.json_response(deps.config.view().model_dump())

    return routes
