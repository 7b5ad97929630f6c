"""Slow Passthrough: holds an image for a set time while reporting progress, then passes it on.

Lets a user pace or stagger branches (and makes prompt overlap certain in tests). It stops
promptly when its prompt is interrupted. Each step also shows the image it holds as a live
preview, through the progress bar like a sampler's previews, so previews can be followed too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

PREVIEW_SIZE = 256  # longest side of the preview: a thumbnail, cheap to encode and send
SLICE = 0.1  # longest uninterruptible sleep: how late an interrupt may be noticed

log = logging.getLogger(__name__)


def progress_line(step: int, steps: int, seconds: float) -> str:
    """The node's progress text: which step and how much time is left."""
    left = max(0.0, seconds * (steps - step) / steps)
    return f"step {step}/{steps}, {left:.1f} s left"


def wait(seconds: float, check: Callable[[], None]) -> None:
    """Sleep `seconds` in slices of at most `SLICE`, calling `check` (which raises on an
    interrupt) before each, so a long step still stops within a slice of an interrupt."""
    end = time.monotonic() + seconds
    while True:
        check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, SLICE))


def preview_of(image: Any, max_size: int = PREVIEW_SIZE) -> tuple[str, Any, int] | None:
    """ComfyUI's preview tuple ("JPEG", PIL image, max_size) for the first image of an IMAGE
    batch ([B, H, W, C] floats in 0..1), at most `max_size` pixels wide or high, made once
    per run; None if it is no such image."""
    try:
        import numpy as np
        import torch
        from PIL import Image

        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] > 4:
            raise ValueError(f"not an IMAGE batch: {getattr(image, 'shape', type(image))}")
        pixels = (image[0].detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
        array = pixels.numpy()
        if array.shape[-1] == 1:
            array = array[..., 0]
        picture = Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
    except Exception as error:  # a preview must never fail the node
        log.debug("parallel-runs: no preview for this input: %s", error)
        return None
    picture.thumbnail((max_size, max_size))
    # ComfyUI fits the preview into max_size, scaling small images *up*: give their own size
    return ("JPEG", picture, max(picture.size))


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
        preview = preview_of(image)
        check = comfy.model_management.throw_exception_if_processing_interrupted
        for step in range(1, steps + 1):
            wait(seconds / steps, check)
            bar.update_absolute(step, steps, preview)
            if unique_id is not None:
                PromptServer.instance.send_progress_text(
                    progress_line(step, steps, seconds), unique_id
                )
        return (image,)
