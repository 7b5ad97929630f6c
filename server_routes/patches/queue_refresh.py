"""Tell every page to reload its queue list when an offloaded prompt changes status.

The stock frontends reload their queue and job lists when ComfyUI sends `status` (which it does
whenever its own queue changes) or `execution_success`. An offloaded prompt changes nothing in
ComfyUI's queue, so a page would not show it until something else happened. The relay
announces each status change as `parallel.job` through `send_sync`; we watch for those and
call ComfyUI's own `queue_updated()`, which sends `status` with the queue count (the offloaded
prompts counted in, where `queue_count` is on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .fallback import Fallback
from .guard import expect_method

JOB_EVENT = "parallel.job"
_MARK = "_parallel_runs_queue_refresh"


class StatusChanges:
    """The last status announced per prompt (the newest `cap` kept): True when an
    announcement changes it."""

    def __init__(self, cap: int = 512) -> None:
        self._cap = cap
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def changed(self, event: Any, data: Any) -> bool:
        if event != JOB_EVENT or not isinstance(data, dict):
            return False
        prompt_id, status = data.get("prompt_id"), data.get("status")
        if not isinstance(prompt_id, str) or not isinstance(status, str):
            return False
        with self._lock:
            if self._last.get(prompt_id) == status:
                return False
            self._last.pop(prompt_id, None)
            self._last[prompt_id] = status
            while len(self._last) > self._cap:
                del self._last[next(iter(self._last))]
        return True


def watch_offloaded_status(server: Any) -> StatusChanges:
    """Wrap `server.send_sync` once; PatchRefused (nothing changed) when it or
    `queue_updated` is not what it expects. Must run before the relay takes `send_sync`."""
    if getattr(server, _MARK, None) is not None:
        return getattr(server, _MARK)
    expect_method(server, "send_sync", ("event", "data", "sid"), coroutine=False)
    expect_method(server, "queue_updated", (), coroutine=False)
    original: Callable[..., None] = server.send_sync
    changes = StatusChanges()
    fallback = Fallback("reloading the queue lists")

    def send_sync(event: Any, data: Any, sid: str | None = None) -> None:
        original(event, data, sid)
        try:
            if changes.changed(event, data):
                server.queue_updated()
        except Exception as error:  # may run on ComfyUI's execution thread: never raise there
            fallback.failed(error)

    server.send_sync = send_sync
    setattr(server, _MARK, changes)
    return changes
