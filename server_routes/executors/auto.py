"""Auto: per prompt, the executor where it would start soonest.

Each candidate's estimated wait is its queue (running and waiting prompts) times its recent run
time per prompt; one that has not run a prompt yet is assumed as fast as the others are (the
median of theirs; a default when none has run one); an idle one waits 0. Free executors (this
ComfyUI, other ComfyUI servers) are preferred; paid RunPod is chosen only when every free one
would wait longer than the threshold the user set, and only if RunPod would start sooner.
Ties go to the first listed (this ComfyUI first), so a batch queued one by one spreads: each
prompt queued somewhere makes that queue longer for the next choice.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .contract import LOCAL, Executor, Health

DEFAULT_RUN_SECONDS = 10.0  # a prompt's run time on an executor that has not run one yet
PAID_KINDS = frozenset({"runpod"})
LocalHealth = Callable[[], Awaitable[Health]]


@dataclass(frozen=True)
class Choice:
    executor: str
    waits: dict[str, float | None]  # every candidate's estimated wait in seconds (None: down)


def estimated_wait(health: Health, default_run: float = DEFAULT_RUN_SECONDS) -> float | None:
    """Seconds until a new prompt would start there; None when it cannot be used now."""
    if not health.reachable:
        return None
    queued, busy = health.queued or 0, (health.queued or 0) + (health.running or 0)
    if busy == 0 or (health.idle_workers or 0) > queued:
        return 0.0
    return busy * (health.run_seconds or default_run)


def default_run_time(healths: Iterable[Health]) -> float:
    """What a prompt is assumed to take where none has run yet: what it takes elsewhere."""
    known = [h.run_seconds for h in healths if h.run_seconds]
    return statistics.median(known) if known else DEFAULT_RUN_SECONDS


def pick(
    healths: Iterable[Health], paid_after: float | None
) -> tuple[str | None, dict[str, float | None]]:
    """The executor to use (None: none can be used), and each one's wait."""
    healths = list(healths)
    default = default_run_time(healths)
    waits = {h.executor: estimated_wait(h, default) for h in healths}
    usable = {name: wait for name, wait in waits.items() if wait is not None}
    free = {n: w for n, w in usable.items() if n.partition(":")[0] not in PAID_KINDS}
    paid = {n: w for n, w in usable.items() if n not in free}
    best_free = min(free, key=free.__getitem__) if free else None
    best_paid = min(paid, key=paid.__getitem__) if paid else None
    if best_paid is not None and paid_after is not None and paid_after > 0:
        free_wait = free[best_free] if best_free is not None else float("inf")
        if free_wait > paid_after and paid[best_paid] < free_wait:
            return best_paid, waits
    return best_free, waits


def local_health(queue: Any) -> Health:
    """This ComfyUI's own queue (`PromptServer.prompt_queue`): running and waiting prompts,
    and its recent run time from the history's start and end timestamps."""
    running, pending = queue.get_current_queue_volatile()
    durations = list(_run_times(queue.get_history(max_items=20).values()))
    per_prompt = statistics.median(durations) if durations else None
    return Health(LOCAL, True, len(pending), len(running), None, per_prompt)


def _run_times(entries: Iterable[Mapping[str, Any]]) -> Iterable[float]:
    for entry in entries:
        stamps = {
            name: data.get("timestamp")
            for name, data in (entry.get("status") or {}).get("messages") or []
            if isinstance(data, Mapping)
        }
        start, end = stamps.get("execution_start"), stamps.get("execution_success")
        if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
            yield (end - start) / 1000


class AutoChooser:
    """Chooses among this ComfyUI (when `local` is given) and the configured executors."""

    def __init__(self, executors: Mapping[str, Executor], local: LocalHealth | None) -> None:
        self._executors = executors
        self._local = local

    async def healths(self, allowed: set[str] | None) -> list[Health]:
        """Every candidate's health with its estimated wait, this ComfyUI first, asked at
        the same time."""
        asks: list[Awaitable[Health]] = []
        if self._local is not None and (allowed is None or LOCAL in allowed):
            asks.append(self._local())
        for executor in self._executors.values():
            for name in executor.configured():
                if allowed is None or name in allowed:
                    asks.append(executor.health(name))
        healths = list(await asyncio.gather(*asks))
        _, waits = pick(healths, None)
        return [replace(h, estimated_wait=waits[h.executor]) for h in healths]

    async def choose(self, allowed: set[str] | None, paid_after: float | None) -> Choice | None:
        chosen, waits = pick(await self.healths(allowed), paid_after)
        return None if chosen is None else Choice(chosen, waits)
