"""How much of what a remote side says is kept: every text or id that is stored, logged or sent
to a browser is bounded here, so one hostile or broken answer cannot fill the registry, the
log or a websocket frame. The README's security section lists these numbers."""

from __future__ import annotations

MAX_ERROR_CHARS = 2000  # an error message as the UI and the job records keep it
MAX_KIND_CHARS = 200  # an error type, a node type
MAX_ID_CHARS = 200  # a job id, a workflow id, a client id
MAX_NODE_ID_CHARS = 64  # a node id ("12:5" for subgraph nodes)
MAX_PROGRESS_TEXT_CHARS = 4000  # one node's progress text, as relayed
MAX_PROGRESS_TEXTS = 100  # nodes with progress text in one progress value


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"… ({len(text) - limit} more characters)"
    return text[: max(limit - len(note), 0)] + note


def clip_optional(text: str | None, limit: int) -> str | None:
    return None if text is None else clip(text, limit)


def bounded_id(value: object, limit: int = MAX_ID_CHARS) -> str | None:
    """An id as text, or None when it is missing or too long to be a real one (a cut id
    would name something else, so it is dropped rather than shortened)."""
    if value is None:
        return None
    text = str(value)
    return text if 0 < len(text) <= limit else None
