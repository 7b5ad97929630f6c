"""Plain-text progress, one bar per prompt, for terminals and for logs.

On a TTY the bars are redrawn in place (one line each); anywhere else (CI logs, pipes) every
change is printed as its own line, so the output stays readable without escape codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from .errors import first_line
from .prompt_run import PromptRun, RunStatus

WIDTH = 24


def render(label: str, run: PromptRun, width: int = WIDTH) -> str:
    """`label [#######.........]  35% running  node 2 (Slow) 3/10  step 3/10, 1.4 s left`."""
    fraction = run.fraction()
    filled = int(fraction * width)  # full only when done
    parts = [f"{label} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"]
    parts.append(run.status.value)
    node = run.current_node
    if node is not None and run.status == RunStatus.RUNNING:
        progress = run.nodes.get(node)
        step = f" {progress.value:g}/{progress.max:g}" if progress and progress.max > 1 else ""
        parts.append(f"node {node} ({run.node_type(node)}){step}")
        parts.append(first_line(run.progress_text.get(node, ""))[:60])
    return "  ".join(p for p in parts if p)


@dataclass
class ProgressBoard:
    stream: TextIO
    tty: bool | None = None
    width: int = WIDTH
    _lines: dict[str, str] = field(default_factory=dict)
    _drawn: int = 0

    def __post_init__(self) -> None:
        if self.tty is None:
            self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, label: str, run: PromptRun) -> None:
        self.show(label, render(label, run, self.width))

    def show(self, label: str, line: str) -> None:
        """Set one prompt's line; prints only when it changed."""
        if self._lines.get(label) == line:
            return
        self._lines[label] = line
        if self.tty:
            self._redraw()
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _redraw(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F")  # back to the first bar
        for line in self._lines.values():
            self.stream.write("\x1b[2K" + line + "\n")
        self._drawn = len(self._lines)
