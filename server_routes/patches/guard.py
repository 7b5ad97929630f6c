"""Before wrapping a ComfyUI method, check that it looks as expected. Users run ComfyUI
versions newer than the test bed: when a method is missing or its parameters changed, the
feature that wraps it stays off (stock behaviour), and the reason goes to one log line and to
`/parallel/health`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)


class PatchRefused(RuntimeError):
    """What the feature wraps does not look as expected; the message says why."""


def expect_method(server: Any, name: str, parameters: Iterable[str], *, coroutine: bool) -> None:
    """Raise PatchRefused unless `server.name` is a (coroutine) function whose parameters
    start with `parameters`, in that order (later, optional ones are fine)."""
    method = getattr(server, name, None)
    if method is None or not callable(method):
        raise PatchRefused(f"this ComfyUI's PromptServer has no {name}()")
    if inspect.iscoroutinefunction(method) != coroutine:
        kind = "a coroutine" if coroutine else "a plain function"
        raise PatchRefused(f"PromptServer.{name}() is no longer {kind}")
    try:
        found = list(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        raise PatchRefused(f"PromptServer.{name}() has no readable signature") from None
    wanted = list(parameters)
    if found[: len(wanted)] != wanted:
        raise PatchRefused(
            f"PromptServer.{name}() takes ({', '.join(found)}), expected ({', '.join(wanted)})"
        )


def refused(feature: str, reason: PatchRefused) -> str:
    """Log that `feature` stays off, once, and return the health detail."""
    detail = f"off: {reason}"
    log.warning("[parallel-runs] %s %s; ComfyUI's own behaviour is kept", feature, detail)
    return detail
