"""A wrapper that runs inside ComfyUI's own loops (the publish loop, the execution thread) must
never raise: one exception there can end the loop, and with it ComfyUI. Each wrapper keeps a
`Fallback`; on an unexpected error it logs once and does what stock ComfyUI would have done."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Fallback:
    """Counts the failures of one wrapper; the first is logged with its traceback, the rest
    only counted (a hostile client could otherwise fill the log)."""

    feature: str
    failures: int = 0

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            log.error(
                "[parallel-runs] %s failed (%s); this message went out as stock ComfyUI sends "
                "it, and later failures are counted without logging",
                self.feature,
                type(error).__name__,
                exc_info=error,
            )
