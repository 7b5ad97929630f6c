"""When to ask RunPod about a job next, within a fixed budget of requests per job-second,
and what recent jobs of an endpoint say about how long the next one takes (pure logic)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class PollPlanner:
    """When to ask `/status` next: soon after submission, backing off while queued, seldom
    while running, densely around the expected end. Budget: the n-th poll of a job comes no
    earlier than n / `rate` seconds after it was submitted, so a job never costs more than
    `rate` polls per second of its life; time spent sparsely is saved up for the end.
    Planned polls keep `reserve` of that budget back for the poll right after a sibling's
    wake-up, and each job's planned polls sit at its own random `phase` on the budget's grid:
    jobs submitted together then look at different moments, one sees the end soon after it
    happens, and the others, woken, look at once."""

    started: float = 0.0  # when the job was submitted (or resumed)
    rate: float = 2.0
    reserve: float = 0.2
    near: float = 0.1  # spacing after the expected end, growing by `near` per poll
    queue_first: float = 0.25
    queue_growth: float = 1.5
    queue_max: float = 2.0
    # Nothing to predict with: a little sparser than the budget (1/rate), so jittered siblings
    # poll on different beats and keep slack to look at once when one of them sees the end.
    running_default: float = 0.7
    running_max: float = 1.5  # keeps progress bars moving on long jobs
    jitter: float = 0.3  # up to 30% earlier, on every delay but those around the end
    rng: random.Random = field(default_factory=random.Random, repr=False)
    polls: int = 0
    queue_polls: int = 0
    near_polls: int = 0
    _zone: str = "queue"
    phase: float = field(init=False)

    def __post_init__(self) -> None:
        self.phase = self.rng.uniform(0.0, 1.0 / self._planned_rate)

    @property
    def _planned_rate(self) -> float:
        return self.rate * (1.0 - self.reserve)

    def desired(self, remote: str | None, remaining: float | None, overdue: float) -> float:
        """Seconds until the next poll we would like (no budget applied); no side effects."""
        if remote != "IN_PROGRESS":
            self._zone = "queue"
            return min(self.queue_first * self.queue_growth**self.queue_polls, self.queue_max)
        if remaining is not None and remaining > self.near:
            self._zone = "sparse"
            return min(remaining, self.running_max)
        if remaining is not None and remaining > -overdue:
            # at the expected end (at once if that has passed), then `near`, 2*`near`, ...
            self._zone = "near"
            if self.near_polls == 0:
                return max(remaining, 0.0)
            return min(self.near * self.near_polls, self.running_default)
        self._zone = "default"
        return self.running_default

    def delay(
        self,
        now: float,
        remote: str | None,
        remaining: float | None,
        overdue: float = 1.0,
        learned: bool = False,
        woken: bool = False,
    ) -> float:
        """Seconds to wait. `learned`: `remaining` comes from the endpoint's recent jobs, a
        good predictor, so no jitter (while guessing, jitter spreads sibling jobs' polls).
        `woken`: a sibling just finished, so the reserve may be spent."""
        wanted = self.desired(remote, remaining, overdue)
        if self._zone != "near" and self.jitter and not learned:
            # de-synchronise jobs submitted together: one of them sees the end early, and
            # its siblings are woken to re-plan with what it learnt
            # (earlier only: a late poll is latency, an early one just a request)
            wanted *= self.rng.uniform(1.0 - self.jitter, 1.0)
        wanted += now
        if woken:
            allowed = self.started + (self.polls + 1) / self.rate
        else:  # no phase for the first poll (a job's start shows at once) or once aimed
            phase = self.phase if self.polls and not learned else 0.0
            allowed = self.started + phase + (self.polls + 1) / self._planned_rate
        return max(wanted, allowed) - now

    def spend(self, now: float) -> None:
        """A poll is being made now (in the zone the last `delay` planned for)."""
        self.polls += 1
        self.queue_polls += self._zone == "queue"
        self.near_polls = self.near_polls + 1 if self._zone == "near" else 0


@dataclass
class EndpointStats:
    """Smoothed execution time of an endpoint's recent jobs (seconds)."""

    estimate: float | None = None

    def observe(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self.estimate = seconds if self.estimate is None else 0.7 * self.estimate + 0.3 * seconds
