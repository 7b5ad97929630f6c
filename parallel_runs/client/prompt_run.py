"""The state of one prompt as its websocket events arrive, and what it finally produced.

Pure bookkeeping with no I/O, so that the event rules are unit-tested without a server; the
`Connector` feeds events in and turns a finished run into a `RunResult`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..files import plain_name
from .comfy_client import Event
from .errors import OutputsMissing, PromptFailed, PromptInterrupted

TERMINAL_EVENTS = ("execution_success", "execution_error", "execution_interrupted")


class RunStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    INTERRUPTED = "interrupted"


@dataclass
class NodeProgress:
    value: float = 0.0
    max: float = 1.0
    state: str = "running"

    @property
    def fraction(self) -> float:
        return min(1.0, self.value / self.max) if self.max else 0.0


@dataclass(frozen=True)
class OutputFile:
    """A file a node produced, as the history names it, with its bytes from `/view`."""

    node_id: str
    filename: str
    subfolder: str
    type: str
    data: bytes = field(repr=False)

    @property
    def safe_name(self) -> str:
        """The bare file name, with nothing a hostile server could use to leave a folder."""
        return plain_name(self.filename, fallback="output")


@dataclass
class RunResult:
    prompt_id: str
    status: RunStatus
    history: dict[str, Any] | None
    outputs: dict[str, Any]
    files: list[OutputFile]
    error: dict[str, Any] | None = None
    elapsed: float | None = None
    # output files the history lists but the server would not serve, one readable line each
    missing: list[str] = field(default_factory=list)

    def raise_for_status(self) -> RunResult:
        """Return self when the prompt succeeded with every output file, else raise what
        went wrong."""
        if self.status == RunStatus.ERROR:
            raise PromptFailed(self.error or {"prompt_id": self.prompt_id})
        if self.status == RunStatus.INTERRUPTED:
            reason = (self.error or {}).get("message") or "interrupted"
            node = (self.error or {}).get("node_id")
            where = f" in node {node} ({self.error.get('node_type', '?')})" if node else ""
            raise PromptInterrupted(f"prompt {self.prompt_id} {reason}{where}")
        if self.missing:
            raise OutputsMissing(
                f"prompt {self.prompt_id} succeeded, but {len(self.missing)} output file(s) "
                f"could not be fetched: {'; '.join(self.missing)}"
            )
        return self


@dataclass
class PromptRun:
    """Everything seen so far about one prompt; `apply` returns True on its terminal event."""

    prompt_id: str
    prompt: Mapping[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.QUEUED
    nodes: dict[str, NodeProgress] = field(default_factory=dict)
    current_node: str | None = None
    progress_node: str | None = None  # the node whose progress bar moved last
    cached: set[str] = field(default_factory=set)
    executed: set[str] = field(default_factory=set)
    progress_text: dict[str, str] = field(default_factory=dict)
    preview: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in (RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.INTERRUPTED)

    def node_type(self, node_id: str | None) -> str:
        node = self.prompt.get(str(node_id)) if node_id is not None else None
        return str(node.get("class_type", "?")) if isinstance(node, Mapping) else "?"

    def apply(self, event: Event) -> bool:
        handler = getattr(self, "_on_" + event.type, None)
        if handler is not None and not self.finished:
            handler(event.data if isinstance(event.data, Mapping) else {})
        return self.finished

    def finish(self, status: RunStatus, error: dict[str, Any] | None = None) -> None:
        """Settle the run from outside the event stream (removed from the queue, timed out)."""
        if not self.finished:
            self.status, self.error = status, error
            self.finished_at = time.monotonic()

    def fraction(self) -> float:
        """Share of the prompt's nodes done, counting the running node's own progress."""
        if self.status == RunStatus.SUCCESS:
            return 1.0
        total = max(len(self.prompt), len(self.cached | self.executed | set(self.nodes)), 1)
        done = len(self.cached | self.executed)
        running = [
            p.fraction for n, p in self.nodes.items() if n not in self.executed | self.cached
        ]
        return min(1.0, (done + sum(running)) / total)

    # Event handlers, named after ComfyUI's event types.

    def _on_execution_start(self, _: Mapping[str, Any]) -> None:
        self.status, self.started_at = RunStatus.RUNNING, time.monotonic()

    def _on_execution_cached(self, data: Mapping[str, Any]) -> None:
        self.cached.update(str(n) for n in data.get("nodes", []))

    def _on_executing(self, data: Mapping[str, Any]) -> None:
        node = data.get("node")
        if self.current_node is not None and node != self.current_node:
            self.executed.add(self.current_node)
        self.current_node = None if node is None else str(node)
        if self.current_node is not None:
            self.status = RunStatus.RUNNING
            self.nodes.setdefault(self.current_node, NodeProgress(0, 1))

    def _on_progress(self, data: Mapping[str, Any]) -> None:
        node = self.progress_node = str(data.get("node"))
        progress = self.nodes.setdefault(node, NodeProgress())
        progress.value, progress.max = float(data.get("value", 0)), float(data.get("max", 1))

    def _on_progress_state(self, data: Mapping[str, Any]) -> None:
        for node_id, state in (data.get("nodes") or {}).items():
            progress = self.nodes.setdefault(str(node_id), NodeProgress())
            progress.value = float(state.get("value", progress.value))
            progress.max = float(state.get("max", progress.max))
            progress.state = str(state.get("state", progress.state))
            if progress.state == "finished":
                self.executed.add(str(node_id))

    def _on_progress_text(self, data: Mapping[str, Any]) -> None:
        self.progress_text[str(data.get("node"))] = str(data.get("text", ""))

    def _on_preview(self, data: Mapping[str, Any]) -> None:
        self.preview = {**data, "node": data.get("node", self.current_node)}

    def _on_executed(self, data: Mapping[str, Any]) -> None:
        node = str(data.get("node"))
        self.executed.add(node)
        if data.get("output") is not None:
            self.outputs[node] = data["output"]

    def _on_execution_success(self, _: Mapping[str, Any]) -> None:
        self.finish(RunStatus.SUCCESS)

    def _on_execution_error(self, data: Mapping[str, Any]) -> None:
        self.finish(RunStatus.ERROR, dict(data))

    def _on_execution_interrupted(self, data: Mapping[str, Any]) -> None:
        self.finish(RunStatus.INTERRUPTED, {"message": "was interrupted", **data})


def output_refs(outputs: Mapping[str, Any], types: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(node id, {filename, subfolder, type}) for every file entry in a history `outputs` map,
    whatever key the node used (images, gifs, audio, video, 3d...)."""
    refs = []
    for node_id, output in outputs.items():
        if not isinstance(output, Mapping):
            continue
        for items in output.values():
            if not isinstance(items, list):
                continue
            for item in items:
                if (
                    isinstance(item, Mapping)
                    and isinstance(item.get("filename"), str)
                    and item.get("type", "output") in types
                ):
                    refs.append((str(node_id), dict(item)))
    return refs
