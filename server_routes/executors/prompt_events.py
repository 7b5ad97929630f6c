"""ComfyUI's own websocket events for a prompt that runs elsewhere: its start and its ending
(outputs, success, error, interruption), with the state they need (which node ran last, which
finished) read from the progress events an executor reported. Pure: no I/O, no clock but the
event timestamps. Also the preview frame every executor kind relays the same way."""

from __future__ import annotations

import io
import logging
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .records import JobError, SavedFile, ui_output

Event = tuple[str, dict[str, Any]]
log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1  # ComfyUI's BinaryEventTypes: `[u32 1=JPEG|2=PNG][image bytes]`
PREVIEW_IMAGE_WITH_METADATA = 4  # `[u32 len][metadata json][image bytes]`, flagged clients
PREVIEW_FLAG = "supports_preview_metadata"
MAX_PREVIEW_PIXELS = 2048 * 2048  # a preview bigger than this is refused before decoding
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}


def timestamp() -> int:
    """Milliseconds since the epoch, as ComfyUI stamps its events."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class RelayPreview:
    """A worker's preview frame, checked: decoded bytes whose signature matches its type."""

    node: str
    image_type: str  # "image/jpeg" | "image/png"
    image: bytes

    @property
    def format(self) -> str:
        return _FORMATS[self.image_type]

    def metadata(self, prompt_id: str) -> dict[str, Any]:
        """What ComfyUI puts in front of a type-4 frame (node ids as the prompt knows them)."""
        return {
            "node_id": self.node,
            "display_node_id": self.node,
            "parent_node_id": None,
            "real_node_id": self.node,
            "prompt_id": prompt_id,
            "image_type": self.image_type,
        }

    def legacy_payload(self) -> bytes:
        """The type-1 payload: `[u32 1=JPEG|2=PNG]` then the image, as ComfyUI builds it."""
        return struct.pack(">I", 2 if self.image_type == "image/png" else 1) + self.image

    def picture(self) -> Any | None:
        """The image decoded with PIL (ComfyUI's type-4 path re-encodes a PIL image), or None
        when it does not decode or is implausibly large for a preview."""
        from PIL import Image

        try:
            picture = Image.open(io.BytesIO(self.image))
            if picture.format != self.format:
                raise ValueError(f"a {picture.format} image sent as {self.image_type}")
            width, height = picture.size
            if width * height > MAX_PREVIEW_PIXELS:
                raise ValueError(f"{width}x{height} is too large for a preview")
            picture.load()
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            log.warning("[parallel-runs] preview of node %s ignored: %s", self.node, error)
            return None
        return picture.convert("RGB" if self.format == "JPEG" else "RGBA")


@dataclass
class PromptEvents:
    """One prompt's start and ending events. `observe` reads the progress events relayed so
    far, so an error names the node that was running and the nodes that had finished."""

    prompt_id: str
    node_types: Mapping[str, str]
    started: bool = False
    executing: str | None = None
    finished: list[str] = field(default_factory=list)

    def observe(self, events: Iterable[Event]) -> None:
        for name, data in events:
            if name == "execution_start":
                self.started = True
            elif name == "executing" and data.get("node") is not None:
                self.executing = str(data["node"])
            elif name == "progress_state":
                for node, state in (data.get("nodes") or {}).items():
                    if state.get("state") == "finished" and node not in self.finished:
                        self.finished.append(node)

    def start(self) -> list[Event]:
        """`execution_start`, unless the prompt already started."""
        if self.started:
            return []
        self.started = True
        return [("execution_start", {"prompt_id": self.prompt_id, "timestamp": timestamp()})]

    def _node_event(self, node: str | None) -> dict[str, Any]:
        return {"node": node, "display_node": node, "prompt_id": self.prompt_id}

    def executed(self, outputs: Mapping[str, list[SavedFile]]) -> list[Event]:
        return [
            (
                "executed",
                {
                    **self._node_event(node),
                    "output": ui_output(files),
                },
            )
            for node, files in outputs.items()
        ]

    def _idle(self) -> Event:
        """What stock ComfyUI (0.3.75 main.py) sends after every prompt, however it ended:
        `executing` with no node and no `display_node`, after the final event."""
        return ("executing", {"node": None, "prompt_id": self.prompt_id})

    def success(self) -> list[Event]:
        return [
            ("execution_success", {"prompt_id": self.prompt_id, "timestamp": timestamp()}),
            self._idle(),
        ]

    def _culprit(self, error: JobError) -> tuple[str, str]:
        node = error.node_id or self.executing or next(iter(self.node_types), "")
        return node, error.node_type or self.node_types.get(node, "")

    def error(self, error: JobError) -> list[Event]:
        node, node_type = self._culprit(error)
        return [
            (
                "execution_error",
                {
                    "prompt_id": self.prompt_id,
                    "node_id": node,
                    "node_type": node_type,
                    "executed": list(self.finished),
                    "exception_message": error.message,
                    "exception_type": error.type,
                    "traceback": [],
                    "current_inputs": {},
                    "current_outputs": [],
                    "timestamp": timestamp(),
                },
            ),
            self._idle(),
        ]

    def interrupted(self) -> list[Event]:
        node, node_type = self._culprit(JobError(type="interrupted", message=""))
        return [
            (
                "execution_interrupted",
                {
                    "prompt_id": self.prompt_id,
                    "node_id": node,
                    "node_type": node_type,
                    "executed": list(self.finished),
                    "timestamp": timestamp(),
                },
            ),
            self._idle(),
        ]
