"""A stand-in for ComfyUI's prompt queue, for route tests on a bare application (a real
ComfyUI serves the integration tests)."""

from __future__ import annotations

import copy
import threading
from typing import Any

SECRET = "comfy-org-token-never-shown"  # an item's sensitive part: no answer may hold it


class PromptQueue:
    """The parts of ComfyUI 0.3.75's execution.PromptQueue that our routes read and call, with
    its item tuples (number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)."""

    def __init__(self) -> None:
        self.mutex = threading.RLock()
        self.currently_running: dict[int, tuple] = {}
        self.queue: list[tuple] = []
        self.history: dict[str, dict] = {}

    def get_current_queue_volatile(self):
        with self.mutex:
            return list(self.currently_running.values()), copy.copy(self.queue)

    def get_history(self, prompt_id=None, max_items=None, offset=-1, map_function=None):
        with self.mutex:
            keys = [prompt_id] if prompt_id is not None else list(self.history)
            if max_items is not None:
                keys = keys[max(0, len(keys) - max_items) :]
            return {
                k: (map_function or copy.deepcopy)(self.history[k])
                for k in keys
                if k in self.history
            }

    def delete_queue_item(self, function):
        with self.mutex:
            for index, item in enumerate(self.queue):
                if function(item):
                    self.queue.pop(index)
                    return True
        return False

    def wipe_queue(self):
        with self.mutex:
            self.queue = []

    def delete_history_item(self, prompt_id):
        with self.mutex:
            self.history.pop(prompt_id, None)

    def wipe_history(self):
        with self.mutex:
            self.history = {}


def item(number: int, prompt_id: str, client: str | None, workflow: str | None = None) -> tuple:
    """A queue item as ComfyUI 0.3.75 holds it, queued by `client` (None: a script) from the
    workflow tab `workflow`, `number` seconds after a fixed time."""
    extra: dict[str, Any] = {"create_time": 1_700_000_000_000 + number * 1000}
    if client:
        extra["client_id"] = client
    if workflow:
        extra["extra_pnginfo"] = {"workflow": {"id": workflow, "nodes": []}}
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {}}}
    return (number, prompt_id, prompt, extra, ["1"], {"auth_token_comfy_org": SECRET})
