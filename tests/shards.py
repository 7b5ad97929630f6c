"""How `pytest -n N` splits the suite: a fixed share of the tests for each worker process,
computed from the collected test ids alone, so the controller and each worker arrive at the
same split without talking.

Why not xdist's own schedulers: they hand out tests as workers free up, so a worker that has
opened Chromium (whose sync API keeps an event loop running) can be handed an asyncio test
after it, which then cannot run; and a worker cannot start its modules' servers ahead of time
(tests/early_servers.py) without knowing which modules are its own.

A share keeps the collection order (unit tests, then those against real servers, browser tests
last). Tests are split by file; a browser file also by frontend, since its pinned and newest
halves share nothing but the session's servers, which every worker starts anyway."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

# Seconds each group took in a recent `scripts/test --store-seconds` run; a group missing
# from it (a new file) is guessed from its folder.
SECONDS = Path(__file__).with_name("seconds.json")
GUESS = {"browser": 8.0, "integration": 3.0}  # seconds per test
GUESS_OTHER = 0.1
FRONTENDS = re.compile(r"\b(pinned|newest)\b")


def group_of(nodeid: str) -> str:
    """The unit that is never split between workers: a file, or one frontend's half of a
    browser file (`path[pinned]`)."""
    path = nodeid.split("::", 1)[0]
    frontend = FRONTENDS.search(nodeid) if "/browser/" in f"/{path}" else None
    return f"{path}[{frontend.group(1)}]" if frontend else path


def guess(nodeid: str) -> float:
    folders = nodeid.split("::", 1)[0].split("/")
    return next((GUESS[part] for part in folders if part in GUESS), GUESS_OTHER)


def recorded_seconds() -> dict[str, float]:
    try:
        return json.loads(SECONDS.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: the guesses serve
        return {}


def shares(
    nodeids: Sequence[str], count: int, seconds: dict[str, float] | None = None
) -> list[list[int]]:
    """The indices of `nodeids` each of `count` workers runs, in collection order: the
    longest groups first, each to the share that is shortest so far."""
    seconds = recorded_seconds() if seconds is None else seconds
    groups: dict[str, list[int]] = {}
    for index, nodeid in enumerate(nodeids):
        groups.setdefault(group_of(nodeid), []).append(index)
    weight = {
        key: seconds.get(key, sum(guess(nodeids[i]) for i in members))
        for key, members in groups.items()
    }
    load = [0.0] * count
    chosen: list[list[int]] = [[] for _ in range(count)]
    for key in sorted(groups, key=lambda key: -weight[key]):  # stable: ties keep their order
        lightest = min(range(count), key=lambda share: load[share])
        load[lightest] += weight[key]
        chosen[lightest].extend(groups[key])
    return [sorted(share) for share in chosen]


def this_worker() -> tuple[int, int] | None:
    """(number, count) in an xdist worker process, None in a plain pytest run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return None
    return int(worker.removeprefix("gw")), int(os.environ["PYTEST_XDIST_WORKER_COUNT"])


def own_share(items: list, worker: tuple[int, int] | None) -> list:
    """The items this process runs: all of them, or its worker's share."""
    if worker is None:
        return items
    number, count = worker
    return [items[i] for i in shares([item.nodeid for item in items], count)[number % count]]


def make_scheduler(config: object, log: object) -> object:
    """An xdist scheduler that sends each worker its share at once (xdist imported here: a
    plain pytest run needs no xdist)."""
    from xdist.scheduler import EachScheduling

    class ShareScheduling(EachScheduling):
        def schedule(self) -> None:
            assert self.collection_is_completed
            for node, pending in self.node2pending.items():
                if node in self._started:
                    continue
                self._started.append(node)
                if pending:  # it replaces a worker that died: the rest of that one's share
                    node.send_runtest_some(pending)
                    continue
                number = int(node.gateway.id.removeprefix("gw")) % self.numnodes
                pending[:] = shares(self.node2collection[node], self.numnodes)[number]
                if pending:
                    node.send_runtest_some(list(pending))
                node.shutdown()

    return ShareScheduling(config, log)


class SecondsRecorder:
    """`--store-seconds`: writes how long each group took into SECONDS when a run passes (in
    its one process, or in xdist's controller, which sees every report). Groups the run did
    not reach keep their seconds, unless their file is gone."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.totals: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.totals[group_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus != 0:  # a failed run's times say little
            return
        seconds = {**recorded_seconds(), **self.totals}
        kept = {
            group: round(total, 1)
            for group, total in sorted(seconds.items())
            if (self.root / group.split("[", 1)[0]).is_file()
        }
        SECONDS.write_text(json.dumps(kept, indent=1) + "\n")
