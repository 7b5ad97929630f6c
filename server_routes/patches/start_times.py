"""When each local prompt started running, as ComfyUI announced it.

ComfyUI keeps no start time that a route can read while a prompt runs (it reaches the history
only when the prompt ends), so a page that loads mid-run could not show the elapsed time. We
note the timestamp of every `execution_start` as it passes through `send_sync`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .fallback import Fallback
from .guard import expect_method

_MARK = "_parallel_runs_start_times"


class StartTimes:
    """Start times (ms) by prompt id, the newest `cap` kept. Written on ComfyUI's execution
    thread, read by routes on the event loop, hence the lock."""

    def __init__(self, cap: int = 256) -> None:
        self._cap = cap
        self._times: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, event: Any, data: Any) -> None:
        if event != "execution_start" or not isinstance(data, dict):
            return
        prompt_id, stamp = data.get("prompt_id"), data.get("timestamp")
        if not isinstance(prompt_id, str) or isinstance(stamp, bool):
            return
        if not isinstance(stamp, int | float):
            return
        with self._lock:
            self._times.pop(prompt_id, None)
            self._times[prompt_id] = int(stamp)
            while len(self._times) > self._cap:
                del self._times[next(iter(self._times))]

    def get(self, prompt_id: str) -> int | None:
        with self._lock:
            return self._times.get(prompt_id)


def watch_start_times(server: Any, times: StartTimes) -> StartTimes:
    """Wrap `server.send_sync` once so `times` sees every event; returns the times in use.
    PatchRefused (nothing changed) when send_sync is not what it expects."""
    if getattr(server, _MARK, None) is not None:
        return getattr(server, _MARK)
    expect_method(server, "send_sync", ("event", "data", "sid"), coroutine=False)
    original: Callable[..., None] = server.send_sync
    fallback = Fallback("noting start times")

    def send_sync(event: Any, data: Any, sid: str | None = None) -> None:
        try:
            times.note(event, data)
        except Exception as error:  # runs on ComfyUI's execution thread: never raise there
            fallback.failed(error)
        original(event, data, sid)

    server.send_sync = send_sync
    setattr(server, _MARK, times)
    return times
