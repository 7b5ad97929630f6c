"""Auto's choice: the executor where a prompt starts soonest, free ones first, RunPod only past
the user's threshold; a batch queued one by one spreads."""

from __future__ import annotations

from parallel_runs_node.server_routes.executors.auto import (
    DEFAULT_RUN_SECONDS,
    estimated_wait,
    local_health,
    pick,
)
from parallel_runs_node.server_routes.executors.contract import Health


def health(name: str, queued: int = 0, running: int = 0, **more) -> Health:
    return Health(name, more.pop("reachable", True), queued, running, **more)


def test_the_soonest_free_executor_wins_and_ties_go_to_the_first():
    healths = [health("local", running=1), health("comfyui:b"), health("comfyui:c")]
    chosen, waits = pick(healths, None)
    assert chosen == "comfyui:b"
    assert waits == {"local": DEFAULT_RUN_SECONDS, "comfyui:b": 0.0, "comfyui:c": 0.0}


def test_a_batch_queued_one_by_one_spreads():
    queues = {"local": 0, "comfyui:b": 0, "comfyui:c": 0}
    placed = []
    for _ in range(6):
        chosen, _ = pick([health(n, queued=q) for n, q in queues.items()], None)
        queues[chosen] += 1
        placed.append(chosen)
    assert placed == ["local", "comfyui:b", "comfyui:c"] * 2


def test_known_run_times_weigh_more_than_queue_lengths():
    slow = health("local", queued=1, run_seconds=120.0)
    fast = health("comfyui:b", queued=3, run_seconds=10.0)
    assert pick([slow, fast], None)[0] == "comfyui:b"


def test_an_executor_without_history_is_assumed_as_fast_as_the_others():
    known = health("local", queued=3, run_seconds=2.0)  # waits 6 s
    new = health("comfyui:b", queued=1)  # no run yet: 2 s each, like this ComfyUI
    chosen, waits = pick([known, new], None)
    assert chosen == "comfyui:b" and waits == {"local": 6.0, "comfyui:b": 2.0}


def test_runpod_only_past_the_threshold_and_only_when_sooner():
    free = health("local", queued=4, run_seconds=50.0)  # waits 200 s
    paid = health("runpod:ep", idle_workers=2)
    assert pick([free, paid], None)[0] == "local"  # no threshold: never paid
    assert pick([free, paid], 0)[0] == "local"
    assert pick([free, paid], 300.0)[0] == "local"  # the free wait is under the threshold
    assert pick([free, paid], 100.0)[0] == "runpod:ep"
    slow_paid = health("runpod:ep", queued=50, idle_workers=0)
    assert pick([free, slow_paid], 100.0)[0] == "local"  # RunPod would start later still


def test_unreachable_executors_are_never_chosen():
    chosen, waits = pick([health("comfyui:b", reachable=False), health("local", queued=4)], None)
    assert chosen == "local" and waits["comfyui:b"] is None
    assert pick([health("comfyui:b", reachable=False)], 10.0)[0] is None
    assert estimated_wait(health("runpod:ep", reachable=False, idle_workers=3)) is None


class FakeQueue:
    """ComfyUI's PromptQueue as far as Auto reads it (its queue and its history)."""

    def __init__(self, running: int, pending: int, runs: list[tuple[int, int]]) -> None:
        self.running, self.pending, self.runs = running, pending, runs

    def get_current_queue_volatile(self):
        return [object()] * self.running, [object()] * self.pending

    def get_history(self, max_items=None):
        def entry(start: int, end: int) -> dict:
            messages = [
                ["execution_start", {"prompt_id": "p", "timestamp": start}],
                ["execution_success", {"prompt_id": "p", "timestamp": end}],
            ]
            return {"status": {"status_str": "success", "messages": messages}}

        return {str(i): entry(*run) for i, run in enumerate(self.runs)}


def test_this_comfyuis_wait_comes_from_its_queue_and_its_history():
    idle = local_health(FakeQueue(0, 0, []))
    assert (idle.executor, estimated_wait(idle)) == ("local", 0.0)
    busy = local_health(FakeQueue(1, 2, [(0, 4000), (10_000, 16_000), (20_000, 25_000)]))
    assert (busy.running, busy.queued, busy.run_seconds) == (1, 2, 5.0)  # the median run
    assert estimated_wait(busy) == 15.0
    unknown = local_health(FakeQueue(1, 0, []))
    assert estimated_wait(unknown) == DEFAULT_RUN_SECONDS
