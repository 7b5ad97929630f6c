"""RunPod serverless handler: runs one worker-comfyui style job on the worker's own ComfyUI.

The ComfyUI side is the connector's (`parallel_runs.client`): it waits for the server, uploads
the job's images, queues the prompt, follows it on the websocket into a `PromptRun`, stops it
on request and fetches its output files. What is left here is the RunPod side: the job's input
and output (`parallel_runs.runpod.models`), progress posted from the run's state through
`runpod.serverless.progress_update` (rate limited), outputs as base64, and a RunPod cancel
(`CancelledError`) turned into stopping exactly this prompt on ComfyUI.

Only the worker imports this module: it pulls in the heavy `runpod` SDK.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
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

from ..client.connector import Connector, PromptHandle
from ..client.errors import (
    ComfyError,
    ConnectorError,
    PromptRejected,
    describe_failure,
    describe_rejection,
)
from ..client.prompt_run import PromptRun, RunResult, RunStatus
from ..convert.prompt_format import UnknownFormat
from ..limits import clip
from ..runpod.models import (
    MAX_PREVIEW_CHARS,
    InputImage,
    OutputImage,
    WorkerInput,
    WorkerOutput,
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
STOP_TIMEOUT = 10.0  # seconds a cancelled job spends stopping its prompt on ComfyUI
MAX_TEXT = 200  # characters of one node's progress text in a post

log = logging.getLogger("parallel_runs.worker")
ProgressSink = Callable[[dict[str, Any]], None]
# What a run shows before anything happened: nothing to post yet.
NO_PROGRESS: dict[str, Any] = {
    "executing": None, "node": None, "value": None, "max": None, "text": None, "nodes_done": []
}  # fmt: skip


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


def preview_from(data: dict[str, Any] | None) -> WorkerPreview | None:
    """A run's preview frame as a bounded `WorkerPreview`; None when too big or of no node."""
    image = (data or {}).get("image")
    node = (data or {}).get("node")
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
    """Posts what a `PromptRun` shows (as `WorkerProgress`) at most every `interval` seconds.
    Call `update()` after each event of the run and whenever it has been quiet for `interval`:
    a change that lands inside the interval goes out with a later call. A new preview replaces
    the posted one at most every `preview_interval` seconds and rides along for `preview_hold`."""

    run: PromptRun
    send: ProgressSink
    interval: float = DEFAULT_PROGRESS_INTERVAL
    clock: Callable[[], float] = time.monotonic
    preview_interval: float = DEFAULT_PREVIEW_INTERVAL
    preview_hold: float = DEFAULT_PREVIEW_HOLD
    sent: int = 0
    refused: int = 0  # progress the contract refused (logged once)
    _last: float = -math.inf
    # the progress of the last post, without seq and preview (nothing before the first)
    _posted: dict[str, Any] = field(default_factory=lambda: dict(NO_PROGRESS))
    _done: list[str] = field(default_factory=list)  # finished nodes in the order seen
    _frame: Any = None  # the run's preview frame last looked at
    _preview: WorkerPreview | None = None  # the one being posted
    _preview_at: float = -math.inf  # when it was first posted
    _pending: WorkerPreview | None = None  # a newer one waiting for `preview_interval`

    def update(self) -> None:
        """Post the run's progress if it changed (or a new preview is due) and the last post
        is at least `interval` old."""
        now = self.clock()
        self._look_at_preview()
        if now - self._last < self.interval:
            return
        progress = self._progress()
        new_preview = self._pending is not None and now - self._preview_at >= self.preview_interval
        if progress == self._posted and not new_preview:
            return
        if new_preview:
            self._preview, self._pending, self._preview_at = self._pending, None, now
        held = self._preview is not None and now - self._preview_at < self.preview_hold
        try:
            post = WorkerProgress(
                **progress,
                seq=self.sent + 1,
                preview=self._preview.model_dump() if held and self._preview else None,
            )
        except ValidationError as error:  # a node id longer than the contract allows
            if not self.refused:
                log.warning("progress not posted: %s", describe(error, "progress"))
            self.refused += 1
            return
        self._posted, self._last = progress, now
        self.sent += 1
        self.send(post.model_dump(exclude_none=True))

    def _progress(self) -> dict[str, Any]:
        run = self.run
        done = run.cached | run.executed
        self._done.extend(sorted(done.difference(self._done)))
        bar = run.nodes.get(run.progress_node) if run.progress_node is not None else None
        return {
            "executing": run.current_node,
            "node": run.progress_node,
            "value": bar.value if bar else None,
            "max": bar.max if bar else None,
            "text": {n: clip(t, MAX_TEXT) for n, t in run.progress_text.items()} or None,
            "nodes_done": list(self._done),
        }

    def _look_at_preview(self) -> None:
        """Keep the run's newest frame; nodes re-send unchanged previews each step: ignore
        those."""
        if self.run.preview is self._frame:
            return
        self._frame = self.run.preview
        preview = preview_from(self._frame)
        if preview is not None and preview != self._preview:
            self._pending = preview


# --------------------------------------------------------------------------- one job


async def upload_images(connector: Connector, images: list[tuple[str, bytes]]) -> None:
    """Into the input folder under the names the workflow uses, as worker-comfyui does."""
    for name, data in images:
        try:
            await connector.upload(data, name, overwrite=True)
        except ComfyError as error:
            raise JobFailed(f"uploading {name!r} failed: {error}") from None


async def queue_prompt(
    connector: Connector, prompt: dict[str, Any], extra: dict[str, Any] | None
) -> PromptHandle:
    try:
        return await connector.submit(prompt, extra)
    except PromptRejected as error:
        reason = describe_rejection(error.error, error.node_errors, "workflow validation failed")
        raise JobFailed(reason) from None
    except UnknownFormat as error:
        raise JobFailed(f"invalid input: workflow: {error}") from None


async def follow(handle: PromptHandle, reporter: ProgressReporter) -> RunResult:
    """Post progress while the prompt runs (after each of its events, and when it has been
    quiet for the reporter's interval); then its result."""
    quiet = max(reporter.interval, 0.05)
    while not handle.done:
        with contextlib.suppress(asyncio.TimeoutError):
            await handle.next_event(quiet)
        reporter.update()
    return await handle.result()


async def stop(connector: Connector, prompt_id: str) -> None:
    """Take this prompt off the worker's ComfyUI (dequeue or interrupt it) so the GPU is free
    for the next job at once."""
    try:
        await asyncio.wait_for(connector.cancel(prompt_id), STOP_TIMEOUT)
    except (ConnectorError, asyncio.TimeoutError) as error:
        log.warning("could not stop prompt %s: %s", prompt_id, error)


def job_output(result: RunResult) -> dict[str, Any]:
    """worker-comfyui's result: the output files base64-encoded, each naming its node, plus
    the files that could not be read."""
    if result.status == RunStatus.ERROR:
        raise JobFailed(f"workflow execution error: {describe_failure(result.error or {})}")
    if result.status == RunStatus.INTERRUPTED:
        raise JobFailed("the prompt was interrupted on the worker")
    if result.missing and not result.files:
        raise JobFailed("; ".join(result.missing))
    images = [
        OutputImage(
            filename=file.filename,
            type="base64",
            data=base64.b64encode(file.data).decode(),
            node=file.node_id,
        )
        for file in result.files
    ]
    output = WorkerOutput(images=images, errors=result.missing or None)
    return output.model_dump(exclude_none=True)


async def run_job(
    job_input: Any, comfy_url: str, send_progress: ProgressSink, *, interval: float, wait: float
) -> dict[str, Any]:
    """The handler's work, free of RunPod globals so it can be read and tested alone."""
    request = parse_input(job_input)
    images = [(image.name, decode_image(image)) for image in request.images]
    extra = {"api_key_comfy_org": request.api_key_comfy_org} if request.api_key_comfy_org else None
    async with Connector(comfy_url, connect_wait=wait) as connector:
        await upload_images(connector, images)
        handle = await queue_prompt(connector, request.prompt(), extra)
        reporter = ProgressReporter(handle.run, send_progress, interval=interval)
        try:
            result = await follow(handle, reporter)
        except asyncio.CancelledError:
            await stop(connector, handle.prompt_id)
            raise
    return job_output(result)


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    """Entry point for `runpod.serverless.start`; failures become `{"error": ...}`."""
    comfy_url = os.environ.get("COMFY_URL", DEFAULT_COMFY_URL).rstrip("/")
    interval = float(os.environ.get("PARALLEL_RUNS_PROGRESS_INTERVAL", DEFAULT_PROGRESS_INTERVAL))
    wait = float(os.environ.get("PARALLEL_RUNS_COMFY_WAIT", DEFAULT_COMFY_WAIT))

    def send(progress: dict[str, Any]) -> None:
        runpod.serverless.progress_update(job, progress)

    try:
        return await run_job(job.get("input"), comfy_url, send, interval=interval, wait=wait)
    except (JobFailed, ConnectorError) as failure:  # one readable line each
        return {"error": str(failure)}
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        return {"error": f"ComfyUI at {comfy_url} failed: {type(error).__name__}: {error}"}


def main() -> None:
    runpod.serverless.start({"handler": handler})
