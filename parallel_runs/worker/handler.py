"""RunPod serverless handler: runs one worker-comfyui style job on the worker's own ComfyUI.

The job input is validated, its images uploaded, the prompt queued and followed on the
websocket; per-node progress goes out through `runpod.serverless.progress_update` (rate
limited), and the saved images come back base64-encoded. A RunPod cancel arrives as
`CancelledError`; the handler then interrupts exactly this prompt on ComfyUI.

Only the worker imports this module: it pulls in the heavy `runpod` SDK.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import runpod
from pydantic import ValidationError

from ..client.comfy_client import ComfyClient, ComfyError, Event
from ..client.errors import ConnectorError
from ..runpod.models import (
    MAX_PREVIEW_CHARS,
    InputImage,
    WorkerInput,
    WorkerPreview,
    WorkerProgress,
)
from ..validation import describe

DEFAULT_COMFY_URL = "http://127.0.0.1:8188"
DEFAULT_PROGRESS_INTERVAL = 0.5  # seconds between progress posts: each is an HTTP request
DEFAULT_COMFY_WAIT = 120.0  # how long a job waits for ComfyUI to come up on a fresh worker
DEFAULT_PREVIEW_INTERVAL = 1.0  # seconds between two different previews
# A preview rides along in every post for this long: `status.output` keeps only the latest
# post, and the plugin polls it every second or so, so a preview sent once could be missed.
DEFAULT_PREVIEW_HOLD = 3.0
MAX_TEXT = 200

log = logging.getLogger("parallel_runs.worker")
ProgressSink = Callable[[dict[str, Any]], None]


class JobFailed(Exception):
    """A failure reported to RunPod as the job's error (the job ends FAILED)."""


# --------------------------------------------------------------------------- input


def parse_input(raw: Any) -> WorkerInput:
    """Validate the job input; a JSON string is accepted like worker-comfyui does."""
    if raw is None:
        raise JobFailed("invalid input: the job has no 'input'")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise JobFailed("invalid input: 'input' is a string but not JSON") from None
    try:
        return WorkerInput.model_validate(raw)
    except ValidationError as error:
        raise JobFailed(f"invalid input: {describe(error, 'input', most=10)}") from None


def decode_image(image: InputImage) -> bytes:
    data = image.image.split(",", 1)[1] if image.image.startswith("data:") else image.image
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise JobFailed(f"invalid input: image {image.name!r} is not valid base64") from None


# --------------------------------------------------------------------------- progress


def preview_from(data: dict[str, Any], fallback_node: str | None) -> WorkerPreview | None:
    """A preview event as a bounded `WorkerPreview`; None when too big or of no known node."""
    image = data.get("image")
    node = data.get("node") or fallback_node
    if not isinstance(image, bytes | bytearray) or not image or node is None:
        return None
    if (len(image) + 2) // 3 * 4 > MAX_PREVIEW_CHARS:
        log.debug("preview of node %s skipped: %d bytes is too big", node, len(image))
        return None
    image_type = data.get("image_type")
    return WorkerPreview(
        node=str(node),
        image_type=image_type if image_type == "image/png" else "image/jpeg",
        data=base64.b64encode(image).decode(),
    )


@dataclass
class ProgressReporter:
    """Keeps the job's progress state and posts it at most every `interval` seconds; a
    change that lands inside the interval is posted by the next `flush()`. Previews change
    at most every `preview_interval` seconds and stay in the posts for `preview_hold`."""

    send: ProgressSink
    interval: float = DEFAULT_PROGRESS_INTERVAL
    clock: Callable[[], float] = time.monotonic
    preview_interval: float = DEFAULT_PREVIEW_INTERVAL
    preview_hold: float = DEFAULT_PREVIEW_HOLD
    state: WorkerProgress = field(default_factory=WorkerProgress)
    sent: int = 0
    _last: float = -math.inf
    _dirty: bool = False
    _preview: WorkerPreview | None = None  # the one being posted
    _preview_at: float = -math.inf  # when it was first posted
    _pending: WorkerPreview | None = None  # a newer one waiting for `preview_interval`

    def apply(self, event: Event) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        state = self.state
        if event.type == "executing":
            node = data.get("node")
            if state.executing and state.executing != node:
                self._done(state.executing)
            state.executing = node
        elif event.type == "progress":
            state.node, state.value, state.max = (
                data.get("node"),
                data.get("value"),
                data.get("max"),
            )
        elif event.type == "progress_text" and data.get("node") is not None:
            state.text = {**(state.text or {}), str(data["node"]): str(data["text"])[:MAX_TEXT]}
        elif event.type == "executed" and data.get("node") is not None:
            self._done(str(data["node"]))
        elif event.type == "execution_cached":
            for node in data.get("nodes") or []:
                self._done(str(node))
        elif event.type == "preview":
            self._take_preview(data)
            self.flush_if_due()
            return
        else:
            return
        self._dirty = True
        self.flush_if_due()

    def _done(self, node: str) -> None:
        if node not in self.state.nodes_done:
            self.state.nodes_done.append(node)

    def _take_preview(self, data: dict[str, Any]) -> None:
        """Keep the newest frame; nodes re-send unchanged previews each step: ignore those."""
        preview = preview_from(data, self.state.executing)
        if preview is not None and preview != self._preview:
            self._pending = preview

    def _preview_due(self, now: float) -> bool:
        return self._pending is not None and now - self._preview_at >= self.preview_interval

    def flush_if_due(self) -> None:
        now = self.clock()
        if (self._dirty or self._preview_due(now)) and now - self._last >= self.interval:
            self.flush()

    def flush(self) -> None:
        now = self.clock()
        if self._preview_due(now):
            self._preview, self._pending, self._preview_at = self._pending, None, now
            self._dirty = True
        if not self._dirty:
            return
        held = self._preview is not None and now - self._preview_at < self.preview_hold
        self.state.preview = self._preview.model_dump() if held and self._preview else None
        self._dirty, self._last = False, now
        self.sent += 1
        self.state.seq = self.sent
        self.send(self.state.model_dump(exclude_none=True))


# --------------------------------------------------------------------------- ComfyUI calls


async def wait_for_comfy(session: aiohttp.ClientSession, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(f"{url}/system_stats") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise JobFailed(f"ComfyUI at {url} is not reachable")
        await asyncio.sleep(0.5)


async def upload_images(session: aiohttp.ClientSession, url: str, images: list[InputImage]) -> None:
    for image in images:
        form = aiohttp.FormData()
        form.add_field("image", decode_image(image), filename=image.name)
        form.add_field("overwrite", "true")
        async with session.post(f"{url}/upload/image", data=form) as response:
            if response.status != 200:
                raise JobFailed(f"uploading {image.name!r} failed: HTTP {response.status}")


def describe_rejection(error: ComfyError) -> str:
    """ComfyUI's 400 for a prompt, in one line with each node's problems."""
    body = error.body if isinstance(error.body, dict) else {}
    top = body.get("error")
    message = top.get("message") if isinstance(top, dict) else (top or str(error.body))
    parts = [f"workflow validation failed: {message}"]
    for node_id, node_error in (body.get("node_errors") or {}).items():
        details = ", ".join(
            f"{e.get('message', '')} ({e.get('details', '')})".replace(" ()", "")
            for e in node_error.get("errors", [])
        )
        parts.append(f"node {node_id} ({node_error.get('class_type', '?')}): {details}")
    return "; ".join(parts)


def describe_execution_error(data: dict[str, Any]) -> str:
    return (
        f"workflow execution error: node {data.get('node_id')} ({data.get('node_type')}): "
        f"{data.get('exception_type', 'error')}: {data.get('exception_message', '').strip()}"
    )


async def interrupt(session: aiohttp.ClientSession, url: str, prompt_id: str) -> None:
    """Stop this prompt only: drop it if still queued, interrupt it if running."""
    timeout = aiohttp.ClientTimeout(total=10)
    for path, body in (
        ("/queue", {"delete": [prompt_id]}),
        ("/interrupt", {"prompt_id": prompt_id}),
    ):
        try:
            async with session.post(f"{url}{path}", json=body, timeout=timeout) as response:
                await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            log.warning("could not %s prompt %s: %s", path, prompt_id, error)


async def wait_for_history(
    session: aiohttp.ClientSession, url: str, prompt_id: str, timeout: float = 15.0
) -> dict[str, Any]:
    """ComfyUI announces `execution_success` a moment before it files the prompt's history."""
    deadline = time.monotonic() + timeout
    while True:
        async with session.get(f"{url}/history/{prompt_id}") as response:
            entry = (await response.json()).get(prompt_id)
        if entry is not None:
            return entry
        if time.monotonic() > deadline:
            raise JobFailed("ComfyUI finished the prompt but kept no history of it")
        await asyncio.sleep(0.1)


async def collect_images(
    session: aiohttp.ClientSession, url: str, prompt_id: str
) -> tuple[list[dict[str, str]], list[str]]:
    """Saved images (not temp previews) of the prompt, base64-encoded, each with the id of
    its output node (so the plugin shows it there), plus fetch errors."""
    history = await wait_for_history(session, url, prompt_id)
    images: list[dict[str, str]] = []
    errors: list[str] = []
    for node_id, output in (history.get("outputs") or {}).items():
        for item in output.get("images") or []:
            if item.get("type") == "temp":
                continue
            params = {k: item.get(k, "") for k in ("filename", "subfolder", "type")}
            async with session.get(f"{url}/view", params=params) as response:
                if response.status != 200:
                    errors.append(f"node {node_id}: fetching {item.get('filename')} failed")
                    continue
                data = base64.b64encode(await response.read()).decode()
            images.append(
                {"filename": item["filename"], "type": "base64", "data": data, "node": node_id}
            )
    return images, errors


# --------------------------------------------------------------------------- one job


async def follow(client: ComfyClient, prompt_id: str, reporter: ProgressReporter) -> None:
    """Consume events until this prompt ends; flush pending progress while it is quiet."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in client.events():
                await queue.put(event)
        finally:
            await queue.put(None)

    pump_task = asyncio.create_task(pump())
    try:
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), max(reporter.interval, 0.05))
            except asyncio.TimeoutError:
                reporter.flush()
                continue
            if event is None:
                raise JobFailed("lost the connection to ComfyUI while the prompt ran")
            data = event.data if isinstance(event.data, dict) else {}
            if data.get("prompt_id", prompt_id) != prompt_id:
                continue
            if event.type == "execution_error":
                raise JobFailed(describe_execution_error(data))
            if event.type == "execution_interrupted":
                raise JobFailed("the prompt was interrupted on the worker")
            if event.type == "execution_success" or (
                event.type == "executing" and data.get("node") is None and "prompt_id" in data
            ):
                return
            reporter.apply(event)
    finally:
        pump_task.cancel()
        await asyncio.gather(pump_task, return_exceptions=True)


async def run_job(
    job_input: Any, comfy_url: str, send_progress: ProgressSink, *, interval: float, wait: float
) -> dict[str, Any]:
    """The handler's work, free of RunPod globals so it can be read and tested alone."""
    request = parse_input(job_input)
    extra = {"api_key_comfy_org": request.api_key_comfy_org} if request.api_key_comfy_org else None
    reporter = ProgressReporter(send_progress, interval=interval)
    async with aiohttp.ClientSession() as probe:
        await wait_for_comfy(probe, comfy_url, wait)
    async with ComfyClient(comfy_url) as client:
        session = client.session
        await upload_images(session, comfy_url, request.images)
        try:
            prompt_id = await client.queue(request.prompt(), extra)
        except ComfyError as error:
            raise JobFailed(describe_rejection(error)) from None
        try:
            await follow(client, prompt_id, reporter)
        except asyncio.CancelledError:
            await interrupt(session, comfy_url, prompt_id)
            raise
        images, errors = await collect_images(session, comfy_url, prompt_id)
    if errors and not images:
        raise JobFailed("; ".join(errors))
    return {"images": images, **({"errors": errors} if errors else {})}


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """Entry point for `runpod.serverless.start`; failures become `{"error": ...}`."""
    comfy_url = os.environ.get("COMFY_URL", DEFAULT_COMFY_URL).rstrip("/")
    interval = float(os.environ.get("PARALLEL_RUNS_PROGRESS_INTERVAL", DEFAULT_PROGRESS_INTERVAL))
    wait = float(os.environ.get("PARALLEL_RUNS_COMFY_WAIT", DEFAULT_COMFY_WAIT))

    def send(progress: dict[str, Any]) -> None:
        runpod.serverless.progress_update(job, progress)

    try:
        return await run_job(job.get("input"), comfy_url, send, interval=interval, wait=wait)
    except JobFailed as failure:
        return {"error": str(failure)}
    except (aiohttp.ClientError, asyncio.TimeoutError, ConnectorError) as error:
        return {"error": f"ComfyUI at {comfy_url} failed: {type(error).__name__}: {error}"}


def main() -> None:
    runpod.serverless.start({"handler": handler})
