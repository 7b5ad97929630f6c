"""Progress, one bar per prompt, for terminals and for logs.

On a terminal, tqdm draws the bars in place (one line each); anywhere else (CI logs, pipes)
every change is printed as its own plain line, readable without escape codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from .client.errors import first_line
from .client.prompt_run import PromptRun, RunStatus

WIDTH = 24


def status_text(run: PromptRun) -> str:
    """`running  node 2 (Slow) 3/10  step 3/10, 1.4 s left`: the status and, while it runs,
    the current node with its steps and progress text."""
    parts = [run.status.value]
    node = run.current_node
    if node is not None and run.status == RunStatus.RUNNING:
        progress = run.nodes.get(node)
        step = f" {progress.value:g}/{progress.max:g}" if progress and progress.max > 1 else ""
        parts.append(f"node {node} ({run.node_type(node)}){step}")
        parts.append(first_line(run.progress_text.get(node, ""))[:60])
    return "  ".join(p for p in parts if p)


def render(label: str, run: PromptRun, width: int = WIDTH) -> str:
    """`label [#######.........]  35%  ` and the status text: one plain line for logs."""
    fraction = run.fraction()
    filled = int(fraction * width)  # full only when done
    bar = f"{label} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"
    return f"{bar}  {status_text(run)}"


@dataclass
class ProgressBoard:
    """One bar per prompt: tqdm's bars on a terminal, a plain line per change elsewhere."""

    stream: TextIO
    tty: bool | None = None
    width: int = WIDTH
    _lines: dict[str, str] = field(default_factory=dict)
    _bars: dict[str, tqdm] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tty is None:
            self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, label: str, run: PromptRun) -> None:
        if self.tty:
            self._bar(label, run)
        else:
            self.show(label, render(label, run, self.width))

    def show(self, label: str, line: str) -> None:
        """Print one prompt's line, only when it changed."""
        if self._lines.get(label) == line:
            return
        self._lines[label] = line
        self.stream.write(line + "\n")
        self.stream.flush()

    def _bar(self, label: str, run: PromptRun) -> None:
        bar = self._bars.get(label)
        if bar is None:
            bar = self._bars[label] = tqdm(
                total=1000,
                desc=label,
                position=len(self._bars),
                file=self.stream,
                bar_format="{desc} {bar:24} {percentage:3.0f}%{postfix}",
                dynamic_ncols=True,
            )
        bar.n = int(run.fraction() * 1000)
        bar.set_postfix_str(status_text(run), refresh=False)
        bar.refresh()

    def close(self) -> None:
        """Leave the bars as they are on screen and give the terminal back."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
