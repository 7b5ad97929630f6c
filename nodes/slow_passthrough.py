"""Slow Passthrough: holds an image for a set time while reporting progress, then passes it on.

Lets a user pace or stagger branches (and makes prompt overlap certain in tests). It stops
promptly when its prompt is interrupted.
"""

from __future__ import annotations

import time
from typing import Any


def progress_line(step: int, steps: int, seconds: float) -> str:
    """The node's progress text: which step and how much time is left."""
    left = max(0.0, seconds * (steps - step) / steps)
    return f"step {step}/{steps}, {left:.1f} s left"


class SlowPassthrough:
    CATEGORY = "parallel_runs"
    DESCRIPTION = "Waits `seconds` in `steps`, showing progress, then passes the image through."
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "seconds": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 3600.0, "step": 0.1}),
                "steps": ("INT", {"default": 10, "min": 1, "max": 10000}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def run(
        self, image: Any, seconds: float, steps: int, unique_id: str | None = None
    ) -> tuple[Any]:
        import comfy.model_management
        import comfy.utils
        from server import PromptServer

        bar = comfy.utils.ProgressBar(steps, node_id=unique_id)
        for step in range(1, steps + 1):
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(seconds / steps)
            bar.update_absolute(step)
            if unique_id is not None:
                PromptServer.instance.send_progress_text(
                    progress_line(step, steps, seconds), unique_id
                )
        return (image,)
