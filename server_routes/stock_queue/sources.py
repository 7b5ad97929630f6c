"""What the list routes read and act on: ComfyUI's prompt queue (`LocalQueue`) and the prompts
that run on other executors (`Offloaded`)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .shapes import client_of_item, is_active, without_secrets


def _same(entry: Any) -> Any:
    return entry


class LocalQueue:
    """ComfyUI's `PromptQueue`, read without copying and changed only through its own methods.

    Cancelling mirrors ComfyUI's jobs API: a running prompt is interrupted only while it is
    the one running (checked under the queue's lock, or by the queue itself where it has
    `interrupt_if_running`), a waiting one is taken off the queue."""

    def __init__(self, queue: Any, interrupt: Callable[[], None]) -> None:
        self.queue = queue
        self._interrupt = interrupt

    def items(self) -> tuple[list[list[Any]], list[list[Any]]]:
        """(running, waiting) queue items, without their sensitive part."""
        running, pending = self.queue.get_current_queue_volatile()
        return [without_secrets(i) for i in running], [without_secrets(i) for i in pending]

    def history(self) -> Mapping[str, Mapping[str, Any]]:
        """Finished prompts by id, oldest first (read, never changed here)."""
        return self.queue.get_history(map_function=_same)

    def clients(self) -> dict[str, str | None]:
        """Who queued each prompt the queue knows (running, waiting, finished)."""
        running, pending = self.items()
        known = {str(item[1]): client_of_item(item) for item in [*running, *pending]}
        for prompt_id, entry in self.history().items():
            item = entry.get("prompt") if isinstance(entry, Mapping) else None
            if isinstance(item, Sequence) and not isinstance(item, str):
                known.setdefault(str(prompt_id), client_of_item(item))
        return known

    def interrupt_if_running(self, prompt_id: str) -> bool:
        own = getattr(self.queue, "interrupt_if_running", None)
        if callable(own):
            return bool(own(prompt_id))
        with self.queue.mutex:  # the running prompt cannot change while we look
            running, _ = self.queue.get_current_queue_volatile()
            if not any(item[1] == prompt_id for item in running):
                return False
            self._interrupt()
            return True

    def dequeue(self, prompt_id: str) -> bool:
        return bool(self.queue.delete_queue_item(lambda item: item[1] == prompt_id))

    def cancel(self, prompt_id: str) -> bool:
        """Stop one local prompt, running or waiting; False when it is neither."""
        running, pending = self.items()
        if any(item[1] == prompt_id for item in running):
            return self.interrupt_if_running(prompt_id)
        if any(item[1] == prompt_id for item in pending) and self.dequeue(prompt_id):
            return True
        return self.interrupt_if_running(prompt_id)  # it may have started meanwhile

    def forget(self, prompt_id: str) -> None:
        """Delete one finished prompt from the history."""
        self.queue.delete_history_item(prompt_id)


class CancelRefused(Exception):
    """The executor could not be asked to stop the prompt; the answer the route gives."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@dataclass(frozen=True)
class Offloaded:
    """The offloaded prompts: their registry summaries, how to cancel one (the relay's cancel,
    which raises KeyError for an unknown id and CancelRefused when it cannot) and how to forget a
    finished one (its record leaves the registry)."""

    summaries: Callable[[], Iterable[Mapping[str, Any]]]
    cancel_one: Callable[[str], Awaitable[Any]]
    forget_one: Callable[[str], None]

    def by_id(self) -> dict[str, Mapping[str, Any]]:
        return {str(summary["prompt_id"]): summary for summary in self.summaries()}

    async def cancel(self, prompt_id: str) -> bool:
        """Stop an offloaded prompt that is waiting or running; False for any other id."""
        summary = self.by_id().get(prompt_id)
        if summary is None or not is_active(summary):
            return False
        try:
            await self.cancel_one(prompt_id)
        except KeyError:
            return False
        return True

    def forget(self, prompt_ids: Iterable[str]) -> int:
        """Forget the finished ones of `prompt_ids`; how many were forgotten."""
        known = self.by_id()
        forgotten = 0
        for prompt_id in prompt_ids:
            summary = known.get(prompt_id)
            if summary is None or is_active(summary):
                continue
            with contextlib.suppress(KeyError):
                self.forget_one(prompt_id)
                forgotten += 1
        return forgotten
