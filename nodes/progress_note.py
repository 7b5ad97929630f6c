"""Progress Note: writes a status line onto the node while the prompt runs.

Useful to annotate a workflow with what a branch is doing (and the image size it sees);
the text travels as progress text, scoped to the prompt that ran it.
"""

from __future__ import annotations

from typing import Any

TEMPLATE_HELP = "Shown on the node while it runs. {width}, {height} and {batch} are filled in."


def render_note(template: str, width: int, height: int, batch: int) -> str:
    """Fill the placeholders; unknown `{names}` are left as typed rather than failing the run."""
    values = {"width": width, "height": height, "batch": batch}
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", str(value))
    return out


class ProgressNote:
    CATEGORY = "parallel_runs"
    DESCRIPTION = "Passes the image through and shows a note (with its size) on the node."
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "note": (
                    "STRING",
                    {
                        "default": "{width}x{height}, batch {batch}",
                        "multiline": True,
                        "tooltip": TEMPLATE_HELP,
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def run(self, image: Any, note: str, unique_id: str | None = None) -> tuple[Any]:
        from server import PromptServer

        batch, height, width = (int(n) for n in image.shape[:3])
        if unique_id is not None:
            PromptServer.instance.send_progress_text(
                render_note(note, width, height, batch), unique_id
            )
        return (image,)
