"""Typed shapes of what crosses the RunPod boundary: the control-plane API answers (read
leniently, RunPod adds fields) and the worker contract (read strictly, it is untrusted input).

The worker contract follows worker-comfyui so either worker image can serve the plugin.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ..files import MAX_NAME, plain_name
from ..limits import (
    MAX_NODE_ID_CHARS,
    MAX_PROGRESS_TEXT_CHARS,
    MAX_PROGRESS_TEXTS,
    clip,
)

NodeId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NODE_ID_CHARS)]
# What RunPod ids look like (endpoint and job ids): they go into URL paths, so nothing else
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
JobState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]
FINAL_STATES: frozenset[str] = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})


class _Answer(BaseModel):
    """RunPod answers: unknown fields are ignored so a new API field breaks nothing."""

    model_config = ConfigDict(extra="ignore")


class JobStatus(_Answer):
    """`output` is the latest progress value while running; the result only when COMPLETED."""

    id: str = Field(pattern=ID_PATTERN)  # one the client can ask about again
    status: JobState
    output: Any = None
    error: str | None = None
    delayTime: int | None = None
    executionTime: int | None = None

    @field_validator("error", mode="before")
    @classmethod
    def _error_as_text(cls, value: Any) -> str | None:
        # The worker may post a structured error; keep it readable rather than rejecting it.
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES


class HealthJobs(_Answer):
    inQueue: int = Field(default=0, ge=0)
    inProgress: int = Field(default=0, ge=0)


class HealthWorkers(_Answer):
    idle: int = Field(default=0, ge=0)
    running: int = Field(default=0, ge=0)
    initializing: int = Field(default=0, ge=0)


class EndpointHealth(_Answer):
    """`GET /health`: how many jobs wait or run, and how many workers are up."""

    jobs: HealthJobs = Field(default_factory=HealthJobs)
    workers: HealthWorkers = Field(default_factory=HealthWorkers)


# --------------------------------------------------------------------------- worker contract


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputImage(_Strict):
    """An image to upload into the worker's ComfyUI input folder before the prompt runs."""

    name: str = Field(min_length=1, max_length=MAX_NAME)
    image: str = Field(min_length=1, description="base64, optionally as a data: URI")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if plain_name(value, fallback="") != value:
            raise ValueError("must be a plain file name (letters, digits, '._- ', no folders)")
        return value


class PromptNode(BaseModel):
    """One node of an API-format prompt; other keys (`_meta`) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    class_type: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)


class WorkerInput(_Strict):
    """The job input (worker-comfyui contract)."""

    workflow: dict[str, PromptNode] = Field(min_length=1)
    images: list[InputImage] = Field(default_factory=list)
    api_key_comfy_org: str | None = Field(default=None, repr=False)

    def prompt(self) -> dict[str, Any]:
        return {node_id: node.model_dump() for node_id, node in self.workflow.items()}


class OutputImage(_Answer):
    """One result file. `node` (an extension of worker-comfyui's shape) names the output node
    that produced it, so the plugin can show each node's images on that node."""

    filename: str
    type: Literal["base64", "s3_url"]
    data: str
    node: str | None = None

    @property
    def safe_filename(self) -> str:
        return plain_name(self.filename)


class WorkerOutput(_Answer):
    """The result of a COMPLETED job. `errors` lists partial failures (some images lost)."""

    images: list[OutputImage] = Field(default_factory=list)
    errors: list[str] | None = None


MAX_PREVIEW_CHARS = 200 * 1024  # base64 characters of one preview frame (about 150 KB)


class WorkerPreview(_Answer):
    """The latest live preview of a running node (a sampler's or the Slow Passthrough's),
    base64 in `data`. Read from an untrusted worker: bounded, and of a known image type."""

    node: str = Field(min_length=1, max_length=64)
    image_type: Literal["image/jpeg", "image/png"]
    data: str = Field(min_length=1, max_length=MAX_PREVIEW_CHARS)


class WorkerProgress(_Answer):
    """What the worker puts into `status.output` while a job runs (small on purpose).
    `seq` grows with each post: the SDK posts each update from its own thread, so they can
    arrive out of order; a reader keeps the highest `seq` it has seen. `preview` is a raw
    `WorkerPreview` dict, checked on its own so that a bad preview never costs the progress."""

    kind: Literal["progress"] = "progress"
    seq: int = 0
    node: NodeId | None = None
    value: float | None = None
    max: float | None = None
    executing: NodeId | None = None
    text: dict[NodeId, str] | None = None
    nodes_done: list[NodeId] = Field(default_factory=list, max_length=10_000)
    preview: Any = None

    @field_validator("text")
    @classmethod
    def _bounded_texts(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        """Progress text is relayed to the browser: a few nodes' worth, each clipped."""
        if value is None:
            return None
        kept = list(value.items())[:MAX_PROGRESS_TEXTS]
        return {node: clip(text, MAX_PROGRESS_TEXT_CHARS) for node, text in kept}
