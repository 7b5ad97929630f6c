"""API prompts for the tests, built from weight-free nodes so they run on the CPU in
milliseconds. A fresh colour per graph defeats ComfyUI's cache, so every prompt really runs."""

from __future__ import annotations

import random
import uuid
from typing import Literal

Output = Literal["save", "preview", "size_text"]


def fresh_color() -> int:
    return random.randrange(0xFFFFFF)


def slow_note_graph(
    note: str = "",
    *,
    seconds: float = 0.3,
    steps: int = 3,
    width: int = 64,
    height: int = 32,
    color: int | None = None,
    output: Output = "save",
) -> dict:
    """EmptyImage -> Slow Passthrough (node 2) -> Progress Note (node 3) -> an output:
    SaveImage, PreviewImage, or core's GetImageSize (node 4, which sends progress text)
    into PreviewAny."""
    graph: dict[str, dict] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {
                "width": width,
                "height": height,
                "batch_size": 1,
                "color": fresh_color() if color is None else color,
            },
        },
        "2": {
            "class_type": "ParallelRunsSlowPassthrough",
            "inputs": {"image": ["1", 0], "seconds": seconds, "steps": steps},
        },
        "3": {
            "class_type": "ParallelRunsProgressNote",
            "inputs": {"image": ["2", 0], "note": note},
        },
    }
    if output == "save":
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        graph["4"] = {
            "class_type": "SaveImage",
            "inputs": {"images": ["3", 0], "filename_prefix": prefix},
        }
    elif output == "preview":
        graph["4"] = {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}
    else:
        graph["4"] = {"class_type": "GetImageSize", "inputs": {"image": ["3", 0]}}
        graph["5"] = {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}}
    return graph


def note_text_graph(note: str) -> dict:
    """EmptyImage -> Progress Note (node 3) -> GetImageSize (node 4) -> PreviewAny: progress
    text and no live preview (stock ComfyUI reads a client's feature flags unguarded on its
    preview path, which fails a hostile client's prompt, though not the server)."""
    graph = slow_note_graph(note, output="size_text")
    graph["3"]["inputs"]["image"] = ["1", 0]
    del graph["2"]
    return graph
