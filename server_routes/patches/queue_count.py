"""ComfyUI's queue count with the offloaded prompts in it.

`queue_remaining` (in the `status` event and `GET /prompt`) is the one number the stock
frontends read for the queue badge, for whether the actionbar's Stop can be pressed (1.32), and
for Auto Queue, whose "instant" mode queues again when it drops to 0. It counts every client's
prompts in ComfyUI's own queue; the prompts that wait or run on other executors are counted in
the same way, so a page whose prompts all run elsewhere no longer sees an empty queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .fallback import Fallback
from .guard import PatchRefused, expect_method

_MARK = "_parallel_runs_queue_count"


def count_offloaded_in_queue(server: Any, offloaded: Callable[[], int]) -> None:
    """Wrap `server.get_queue_info` once, adding `offloaded()` (the prompts waiting or running
    elsewhere) to its `queue_remaining`. PatchRefused, with nothing changed, when the method or
    its answer is not as expected."""
    if getattr(server, _MARK, False):
        return
    expect_method(server, "get_queue_info", (), coroutine=False)
    original: Callable[[], Any] = server.get_queue_info
    try:
        sample = original()
    except Exception as error:  # e.g. no prompt queue yet: we cannot see the answer's shape
        raise PatchRefused(f"PromptServer.get_queue_info() failed: {error!r}") from None
    if _remaining(sample) is None:
        raise PatchRefused("PromptServer.get_queue_info() has no exec_info.queue_remaining")
    fallback = Fallback("counting offloaded prompts in the queue")

    def get_queue_info() -> Any:
        info = original()
        try:
            local = _remaining(info)
            if local is not None:
                info["exec_info"]["queue_remaining"] = local + offloaded()
        except Exception as error:  # runs on ComfyUI's execution thread too: never raise there
            fallback.failed(error)
        return info

    server.get_queue_info = get_queue_info
    setattr(server, _MARK, True)


def _remaining(info: Any) -> int | None:
    exec_info = info.get("exec_info") if isinstance(info, dict) else None
    remaining = exec_info.get("queue_remaining") if isinstance(exec_info, dict) else None
    return remaining if isinstance(remaining, int) and not isinstance(remaining, bool) else None
