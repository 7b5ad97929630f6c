"""The durable record of a prompt that runs on another executor, and what it holds (its
saved outputs, its error). Pure models: `registry` stores them, the relay changes them."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...parallel_runs.limits import (
    MAX_ERROR_CHARS,
    MAX_KIND_CHARS,
    MAX_NODE_ID_CHARS,
    bounded_id,
    clip,
    clip_optional,
)

EXECUTOR_NAME = r"[A-Za-z0-9_.-]{1,64}"  # a RunPod endpoint id, a ComfyUI server's name, ...
EXECUTOR_PATTERN = rf"^[a-z]+:{EXECUTOR_NAME}$"
Status = Literal["queued", "running", "success", "error", "interrupted"]
ACTIVE: frozenset[str] = frozenset({"queued", "running"})


class SavedFile(BaseModel):
    """One output as ComfyUI's /view addresses it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str
    subfolder: str
    type: Literal["output"] = "output"


# ComfyUI shows a node's saved files by the key of its UI output: SaveAudio's "audio",
# SaveGLB's "3d", everything else (images, and videos as animated images) "images".
_UI_KEY_BY_SUFFIX = {
    **dict.fromkeys((".flac", ".mp3", ".wav", ".ogg", ".opus", ".m4a", ".aac"), "audio"),
    **dict.fromkeys((".glb", ".gltf", ".obj", ".fbx", ".stl", ".ply", ".usdz"), "3d"),
}


def ui_output(files: Iterable[SavedFile]) -> dict[str, list[dict[str, str]]]:
    """One node's saved files as its `executed` UI output, each under the key ComfyUI's own
    node of that kind would use, so the frontend shows audio and 3D files as such."""
    output: dict[str, list[dict[str, str]]] = {}
    for file in files:
        key = _UI_KEY_BY_SUFFIX.get(PurePosixPath(file.filename).suffix.lower(), "images")
        output.setdefault(key, []).append(file.model_dump())
    return output


class JobError(BaseModel):
    """An error as the UI shows it and the registry keeps it: its texts come from the remote
    side, so they are clipped here, on the one path every stored or sent error takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    message: str
    node_id: str | None = None
    node_type: str | None = None

    @field_validator("message")
    @classmethod
    def _clip_message(cls, value: str) -> str:
        return clip(value, MAX_ERROR_CHARS)

    @field_validator("type", "node_type")
    @classmethod
    def _clip_kind(cls, value: str | None) -> str | None:
        return clip_optional(value, MAX_KIND_CHARS)

    @field_validator("node_id")
    @classmethod
    def _bound_node(cls, value: str | None) -> str | None:
        return bounded_id(value, MAX_NODE_ID_CHARS)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


class JobRecord(BaseModel):
    """What we know about one offloaded prompt."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str
    executor: str = Field(pattern=EXECUTOR_PATTERN)  # "<kind>:<name>", e.g. "runpod:abc123"
    job_id: str | None = None  # the remote side's id; None until it accepted the job
    client_id: str | None = None
    workflow_id: str | None = None
    status: Status = "queued"
    remote_status: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    node_types: dict[str, str] = Field(default_factory=dict)  # node id -> class_type
    output_node: str | None = None  # where outputs without a node of their own are shown
    outputs: dict[str, list[SavedFile]] = Field(default_factory=dict)
    error: JobError | None = None
    warning: str | None = None  # the remote side is failing to answer; cleared on recovery

    @model_validator(mode="before")
    @classmethod
    def _older_layout(cls, data: Any) -> Any:
        """Records written before executors had names kept a RunPod `endpoint_id`."""
        if isinstance(data, dict) and "endpoint_id" in data and "executor" not in data:
            endpoint = data["endpoint_id"]
            data = {k: v for k, v in data.items() if k != "endpoint_id"}
            data["executor"] = f"runpod:{endpoint}"
        return data

    @field_validator("client_id", "workflow_id")
    @classmethod
    def _bound_id(cls, value: str | None) -> str | None:
        return bounded_id(value)

    @field_validator("warning")
    @classmethod
    def _clip_warning(cls, value: str | None) -> str | None:
        return clip_optional(value, MAX_ERROR_CHARS)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def kind(self) -> str:
        """The executor kind ("runpod", ...): which adapter follows this job."""
        return self.executor.partition(":")[0]

    @property
    def target(self) -> str:
        """The executor's own name for where the job runs (a RunPod endpoint id, ...)."""
        return self.executor.partition(":")[2]

    def summary(self) -> dict[str, Any]:
        """The JobSummary shape GET /parallel/jobs lists (times in ms since the epoch)."""
        return {
            "prompt_id": self.prompt_id,
            "status": self.status,
            "executor": self.executor,
            "client_id": self.client_id,
            "workflow_id": self.workflow_id,
            "queued_at": _ms(self.created_at),
            "started_at": _ms(self.started_at),
            "finished_at": _ms(self.finished_at),
            "error": self.error.model_dump() if self.error else None,
            "warning": self.warning,
            "outputs": {node: ui_output(files) for node, files in self.outputs.items()} or None,
        }
