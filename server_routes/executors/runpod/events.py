"""The RunPod worker's progress values, read as ComfyUI websocket events (pure: no I/O).

While a job runs, RunPod's `status.output` holds the worker's latest progress post
(`WorkerProgress`): which node executes, a progress bar, finished nodes, progress text and a
preview. Posts can overtake each other, and the same one is read by many polls."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ....parallel_runs.runpod.models import WorkerPreview, WorkerProgress
from ....parallel_runs.validation import field_path
from ..prompt_events import Event, RelayPreview

log = logging.getLogger(__name__)
_MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


def worker_error_text(raw: str | None) -> tuple[str, str]:
    """(type, message) from RunPod's error field, which the SDK fills with a JSON document."""
    if not raw:
        return "RemoteError", "the worker reported a failure without details"
    try:
        parsed = json.loads(raw)
    except ValueError:
        return "RemoteError", raw[:2000]
    if isinstance(parsed, Mapping):
        kind = str(parsed.get("error_type") or "RemoteError")
        message = str(parsed.get("error_message") or parsed.get("error") or raw)
        return kind[:200], message[:2000]
    return "RemoteError", str(parsed)[:2000]


def read_preview(raw: Any) -> RelayPreview | None:
    """The preview carried by a worker progress value, checked (the worker is untrusted):
    None without one, and None with a log line when it is malformed or too big."""
    if not isinstance(raw, Mapping) or raw.get("preview") is None:
        return None
    try:
        preview = WorkerPreview.model_validate(raw["preview"])
    except ValidationError as error:
        where = ", ".join(field_path(e, "preview") for e in error.errors())
        log.warning("[parallel-runs] worker preview ignored: bad or too large (%s)", where)
        return None
    try:
        image = base64.b64decode(preview.data, validate=True)
    except (binascii.Error, ValueError):
        log.warning("[parallel-runs] preview of node %s ignored: not base64", preview.node)
        return None
    if not image.startswith(_MAGIC[preview.image_type]):
        log.warning(
            "[parallel-runs] preview of node %s ignored: not a %s image",
            preview.node,
            preview.image_type,
        )
        return None
    return RelayPreview(preview.node, preview.image_type, image)


@dataclass
class EventMapper:
    """Turns one job's worker progress posts into ComfyUI's progress events (pure, no I/O)."""

    prompt_id: str
    executing: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    progress_node: str | None = None  # the node whose progress bar moved last
    node_fraction: float | None = None  # how far along that node is (0..1)
    preview_seen: bytes | None = None  # digest of the last preview value read
    last_seq: int = 0  # the newest worker post seen (its posts can overtake each other)

    def progress(self, raw: Any) -> list[Event]:
        """Events for the worker's latest progress value (anything else is ignored)."""
        try:
            update = WorkerProgress.model_validate(raw)
        except ValidationError:
            return []
        if self._stale(update.seq):
            return []  # an older post that arrived late: bars must not move backwards
        self.last_seq = max(self.last_seq, update.seq)
        events: list[Event] = []
        changed = False
        for node in update.nodes_done:
            if self.nodes.get(node, {}).get("state") != "finished":
                top = self.nodes.get(node, {}).get("max") or 1
                self.nodes[node] = {"value": top, "max": top, "state": "finished"}
                changed = True
        if update.executing is not None and update.executing != self.executing:
            self.executing = update.executing
            events.append(("executing", self._node_event(update.executing)))
            if update.executing not in self.nodes:
                self.nodes[update.executing] = {"value": 0, "max": 1, "state": "running"}
                changed = True
        if update.node is not None and update.value is not None and update.max:
            entry = {"value": update.value, "max": update.max, "state": "running"}
            if self.nodes.get(update.node) != entry:
                self.nodes[update.node] = entry
                changed = True
                events.append(
                    (
                        "progress",
                        {
                            "value": update.value,
                            "max": update.max,
                            "prompt_id": self.prompt_id,
                            "node": update.node,
                        },
                    )
                )
        for node, text in (update.text or {}).items():
            if self.texts.get(node) != text:
                self.texts[node] = text
                events.append(
                    (
                        "parallel.progress_text",
                        {
                            "prompt_id": self.prompt_id,
                            "node": node,
                            "display_node": node,
                            "text": text,
                        },
                    )
                )
        if changed:
            events.append(("progress_state", self._progress_state()))
        self._track(update)
        return events

    def preview(self, raw: Any) -> RelayPreview | None:
        """A preview not relayed yet (the worker repeats its latest one for a while)."""
        value = raw.get("preview") if isinstance(raw, Mapping) else None
        if value is None or self._stale(raw.get("seq")):
            return None
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
        if digest == self.preview_seen:
            return None
        self.preview_seen = digest  # a bad preview is read (and logged) once, not per poll
        return read_preview(raw)

    def _stale(self, seq: Any) -> bool:
        """A post older than one already seen. A `seq` of 0 or none is a worker that does not
        number its posts: always taken."""
        return isinstance(seq, int) and 0 < seq < self.last_seq

    def _track(self, update: WorkerProgress) -> None:
        """Remember the moving progress bar: its end is when something next happens."""
        node = update.node
        finished = self.nodes.get(node or "", {}).get("state") == "finished"
        if node is None or update.value is None or not update.max or finished:
            self.progress_node = self.node_fraction = None
            return
        self.progress_node = node
        self.node_fraction = max(0.0, min(1.0, update.value / update.max))

    def _node_event(self, node: str | None) -> dict[str, Any]:
        return {"node": node, "display_node": node, "prompt_id": self.prompt_id}

    def _progress_state(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "nodes": {
                node: {
                    **state,
                    "node_id": node,
                    "prompt_id": self.prompt_id,
                    "display_node_id": node,
                    "parent_node_id": None,
                    "real_node_id": node,
                }
                for node, state in self.nodes.items()
            },
        }
