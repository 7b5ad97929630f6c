"""The package's ComfyUI nodes. Imports of ComfyUI modules stay inside the node methods."""

from .progress_note import ProgressNote
from .slow_passthrough import SlowPassthrough

NODE_CLASS_MAPPINGS = {
    "ParallelRunsProgressNote": ProgressNote,
    "ParallelRunsSlowPassthrough": SlowPassthrough,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ParallelRunsProgressNote": "Progress Note (Parallel Runs)",
    "ParallelRunsSlowPassthrough": "Slow Passthrough (Parallel Runs)",
}
