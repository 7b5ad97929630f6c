"""What can go wrong while running prompts, as exceptions whose `str()` is one readable line.

The CLI prints `str(error)` as is, so every message names the prompt, node or server involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ConnectorError(RuntimeError):
    """Base of every error the connector raises on purpose."""


class ServerUnavailable(ConnectorError):
    """The server could not be reached at all (refused, wrong address, not started)."""


class ServerGone(ConnectorError):
    """The server went away (websocket closed, process died) while prompts were waiting."""


class ComfyError(ConnectorError):
    """The server refused a request; `status` and `body` say why."""

    def __init__(self, status: int, body: Any, message: str | None = None) -> None:
        super().__init__(message or f"ComfyUI answered {status}: {body}")
        self.status, self.body = status, body


class PromptRejected(ComfyError):
    """`POST /prompt` refused the prompt (validation); `node_errors` is ComfyUI's own map."""

    def __init__(self, status: int, body: Any) -> None:
        body = body if isinstance(body, Mapping) else {"error": body}
        self.error = body.get("error")
        self.node_errors = dict(body.get("node_errors") or {})
        super().__init__(status, body, describe_rejection(self.error, self.node_errors))


class PromptFailed(ConnectorError):
    """A node raised while the prompt ran; `details` is the `execution_error` event data."""

    def __init__(self, details: Mapping[str, Any]) -> None:
        self.details = dict(details)
        self.node_id = str(details.get("node_id", "?"))
        self.node_type = str(details.get("node_type", "?"))
        super().__init__(
            f"prompt {details.get('prompt_id', '?')} failed in {describe_failure(details)}"
        )


class OutputsMissing(ConnectorError):
    """The prompt succeeded, but the server would not serve some of the files it listed."""


class PromptInterrupted(ConnectorError):
    """The prompt was interrupted while running, or removed from the queue before it ran."""


class PromptTimeout(ConnectorError, TimeoutError):
    """The prompt did not finish within the time the caller allowed."""


def first_line(text: Any) -> str:
    """The first non-empty line: ComfyUI appends tips and tracebacks after it."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe_failure(details: Mapping[str, Any]) -> str:
    """`node 3 (ImageBlur): <exception type>: <first line of its message>`, from the data of
    an `execution_error` event."""
    message = first_line(details.get("exception_message", "")) or "no message"
    kind = details.get("exception_type", "error")
    return (
        f"node {details.get('node_id', '?')} ({details.get('node_type', '?')}): {kind}: {message}"
    )


def describe_rejection(
    error: Any, node_errors: Mapping[str, Any], lead: str = "prompt rejected"
) -> str:
    """`<lead>: <message>; node 3 (LoadImage): <reason>: <details>`."""
    if isinstance(error, Mapping):
        message = error.get("message") or error.get("type") or "invalid prompt"
        details = first_line(error.get("details", ""))
        if details and details not in message:
            message = f"{message}: {details}"
    else:
        message = first_line(error) or "invalid prompt"
    parts = [f"{lead}: {message}"]
    for node_id, info in node_errors.items():
        node_type = info.get("class_type", "?") if isinstance(info, Mapping) else "?"
        reasons = info.get("errors", []) if isinstance(info, Mapping) else []
        text = "; ".join(
            f"{r.get('message', '')}: {first_line(r.get('details', ''))}".rstrip(": ")
            for r in reasons
            if isinstance(r, Mapping)
        )
        parts.append(f"node {node_id} ({node_type}): {text or 'invalid'}")
    return "; ".join(parts)
