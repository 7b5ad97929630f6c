"""The executor contract: what every place a prompt can run other than the local queue offers.

An executor kind (RunPod today) turns a validated API prompt into a remote job and reports on
it as a stream of updates; the relay (`relay.py`) does the rest for every kind alike: events to
the queuing client under the local prompt id, saved outputs, the durable job record. So an
adapter knows nothing of ComfyUI's websocket, and the relay nothing of the remote's API.

Executors are named `"<kind>:<name>"` (`"runpod:abc123"`, later `"comfyui:gpu2"`); a kind alone
(`"runpod"`) means that kind's default, from the settings.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from .prompt_events import Event, RelayPreview
from .records import EXECUTOR_NAME, JobRecord

EXECUTOR_RE = re.compile(rf"^(?P<kind>[a-z]+)(?::(?P<name>{EXECUTOR_NAME}))?$")
LOCAL = "local"


def split_executor(value: str) -> tuple[str, str | None]:
    """`"runpod:abc"` -> ("runpod", "abc"); `"runpod"` -> ("runpod", None). ValueError else."""
    match = EXECUTOR_RE.match(value)
    if match is None:
        raise ValueError(
            f"{value[:80]!r} is not an executor: use 'local', '<kind>' or '<kind>:<name>'"
        )
    return match["kind"], match["name"]


class ExecutorRefused(Exception):
    """The executor cannot take (or act on) this prompt: an answer for the queuing UI.
    `status` is the HTTP status the routes answer with, `field` the request field at fault.
    `uncertain`: the request may have reached the remote side all the same (a lost answer)."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        field: str | None = None,
        *,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.field = status, kind, message, field
        self.uncertain = uncertain


@dataclass(frozen=True)
class PromptJob:
    """What the routes hand an executor: a checked API prompt and where its files live."""

    prompt: dict[str, Any]
    folders: Mapping[str, Path]  # "input"/"output"/"temp": input files are read from here
    extra_data: Mapping[str, Any] | None = None  # the UI's extra data (workflow, ...)


@dataclass(frozen=True)
class Accepted:
    """The remote side took the job: its id there, and its first status."""

    job_id: str
    remote_status: str | None = None


# ----------------------------------------------------------------------- updates of `follow`


@dataclass(frozen=True)
class Waiting:
    """Queued on the remote side."""

    remote_status: str


@dataclass(frozen=True)
class Running:
    """Executing remotely: ComfyUI-shaped events (under the local prompt id) and a preview."""

    remote_status: str
    events: list[Event] = field(default_factory=list)
    preview: RelayPreview | None = None


@dataclass(frozen=True)
class Trouble:
    """The remote side is failing to answer as expected (the job is still followed);
    `warning=None` says it recovered."""

    warning: str | None


@dataclass(frozen=True)
class Finished:
    """The job succeeded. `files` are worker-comfyui image entries (`filename`, `type`
    "base64" with base64 text or "bytes" with the bytes as `data`, optional `node`);
    `warnings` are the remote side's own; `refused` names result files that could not be
    fetched (too large, not served): the prompt then ends in an error naming them."""

    remote_status: str
    files: list[Any]
    warnings: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Failed:
    """The job failed (remotely, or following it became impossible)."""

    kind: str
    message: str
    remote_status: str | None = None
    node_id: str | None = None  # the node at fault, when the remote side says
    node_type: str | None = None


@dataclass(frozen=True)
class Stopped:
    """The job was cancelled on the remote side."""

    why: str


Update = Waiting | Running | Trouble | Finished | Failed | Stopped
FINAL = (Finished, Failed, Stopped)
CancelOutcome = Literal["stopped", "finishing"]  # finishing: it completed; `follow` reports it


@dataclass(frozen=True)
class Health:
    """How busy an executor is, for choosing between them. Unknowns are None."""

    executor: str
    reachable: bool
    queued: int | None = None
    running: int | None = None
    idle_workers: int | None = None
    run_seconds: float | None = None  # a prompt's recent run time there
    estimated_wait: float | None = None  # seconds until a new prompt would start (Auto's)
    detail: str = ""


class Executor(Protocol):
    """One kind of remote executor. Methods take the job's record; `record.target` names the
    executor instance (a RunPod endpoint id, ...)."""

    kind: str
    checks_local_nodes: bool  # the prompt's node types must be installed here too

    def configured(self) -> list[str]:
        """The executor ids of this kind that are set up now (for listing and Auto)."""
        ...

    def resolve(self, name: str | None) -> str:
        """The full executor id for `name` (None: the configured default); raises
        ExecutorRefused when it cannot be used now (not configured, no key, ...)."""
        ...

    async def prepare(self, executor: str, job: PromptJob) -> Any:
        """Check and pack the prompt and its input files for the remote side (it may ask the
        remote what it can run, but changes nothing there): raises ExecutorRefused for what
        the remote side could never accept."""
        ...

    async def submit(self, record: JobRecord, prepared: Any) -> Accepted:
        """Send the job; raises ExecutorRefused (`uncertain` when it may have arrived)."""
        ...

    def follow(self, record: JobRecord) -> AsyncIterator[Update]:
        """Updates until one of FINAL; also after a restart (`record` says how far it got)."""
        ...

    async def cancel(self, record: JobRecord) -> CancelOutcome:
        """Ask the remote side to stop the job."""
        ...

    async def health(self, executor: str) -> Health:
        """Reachability and load of one executor."""
        ...
