"""Servers of a module (a ComfyUI of its own, its fake RunPod, a worker), started in the
background ahead of the tests that use them: their start-ups (seconds of CPU each) overlap with
earlier tests, which mostly wait, instead of being waited for when the module begins.

A module declares such a fixture with `early_fixture`, on a context-manager function that
starts what it yields and stops it on exit. The session (conftest's `early_starts`) plans one
start per use among the tests this process runs (all, or its share under `pytest -n`; see
tests/shards.py), in test order (per parameter for a parametrized fixture, per test
for a function-scoped one), and starts them one at a time in a thread, at most `AHEAD` of
them started and not yet used (each idle ComfyUI holds about 1 GB). A fixture asked for
before its turn starts right there, as a plain fixture would; one whose tests never came
(deselected, or an earlier error) is stopped when a later module takes its own, or when the
session ends."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

AHEAD = 3  # started and not yet used, at most

Factory = Callable[..., contextlib.AbstractContextManager[Any]]
# (module, fixture, parameter, test): one start each
Key = tuple[str, str, Any, str | None]


@dataclass(frozen=True)
class Early:
    """What a factory gets: a fresh folder of its own, and the session's servers by fixture
    name (waited for: a factory runs in a thread)."""

    path: Path
    param: Any
    session_server: Callable[[str], Any]


@dataclass
class _Declared:
    factory: Factory
    scope: str
    parametrized: bool


# fixture name -> declaration, per module
DECLARED: dict[tuple[str, str], _Declared] = {}


def early_fixture(
    scope: str = "module", params: list[Any] | None = None
) -> Callable[[Factory], Any]:
    """The fixture named as the decorated function, whose value is what it yields; the
    function gets an `Early` and runs in the background ahead of its first use."""

    def declare(factory: Factory) -> Any:
        name, module = factory.__name__, factory.__module__
        DECLARED[(module, name)] = _Declared(factory, scope, params is not None)

        def fixture(request: pytest.FixtureRequest, early_starts: EarlyStarts) -> Iterator[Any]:
            with early_starts.take(key_of(request.node, module, name, request)) as value:
                yield value

        return pytest.fixture(scope=scope, params=params, name=name)(fixture)

    return declare


def key_of(item: Any, module: str, name: str, request: Any = None) -> Key:
    declared = DECLARED[(module, name)]
    if not declared.parametrized:
        param = None
    elif request is not None:
        param = request.param
    else:
        param = item.callspec.params[name]
    return (module, name, param, item.nodeid if declared.scope == "function" else None)


def planned_keys(items: list[pytest.Item]) -> list[Key]:
    """One key per start the collected tests need, in the order they first need it."""
    keys: dict[Key, None] = {}
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", None)
        for name in getattr(item, "fixturenames", ()):
            if (module, name) in DECLARED:
                keys.setdefault(key_of(item, module, name))
    return list(keys)


@dataclass
class _Slot:
    key: Key
    index: int
    early: Early
    state: str = "planned"  # planned, starting, started, taken, closed
    dropped: bool = False  # its tests are past: close it once started
    value: Any = None
    error: BaseException | None = None
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    done: threading.Event = field(default_factory=threading.Event)


class EarlyStarts:
    def __init__(
        self,
        keys: list[Key],
        folder: Callable[[str], Path],
        session_server: Callable[[str], Any],
    ) -> None:
        self._lock = threading.Condition()
        self._order = [
            _Slot(key, index, Early(folder(key[1]), key[2], session_server))
            for index, key in enumerate(keys)
        ]
        self._slots = {slot.key: slot for slot in self._order}
        self._folder, self._session_server = folder, session_server
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="early-starts", daemon=True)
        self._thread.start()

    def _waiting(self) -> int:
        return sum(s.state in ("starting", "started") and not s.dropped for s in self._order)

    def _run(self) -> None:
        for slot in self._order:
            with self._lock:
                self._lock.wait_for(
                    lambda slot=slot: (
                        self._closing or slot.state != "planned" or self._waiting() < AHEAD
                    )
                )
                if self._closing:
                    return
                if slot.state != "planned" or slot.dropped:
                    continue
                slot.state = "starting"
            self._start(slot)

    def _start(self, slot: _Slot) -> None:
        module, name = slot.key[:2]
        try:
            slot.value = slot.stack.enter_context(DECLARED[(module, name)].factory(slot.early))
        except BaseException as error:  # re-raised in the test that needs it
            slot.error = error
        with self._lock:
            slot.state = "started"
            close = slot.dropped or self._closing
            self._lock.notify_all()
        slot.done.set()
        if close:
            self._close(slot)

    def _close(self, slot: _Slot) -> None:
        with self._lock:
            if slot.state == "closed":
                return
            slot.state = "closed"
            self._lock.notify_all()
        slot.stack.close()

    @contextlib.contextmanager
    def take(self, key: Key) -> Iterator[Any]:
        """The started value for `key` (waiting for its start, or starting it now); stopped
        when the block ends."""
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:  # not foreseen from the collected tests
                slot = _Slot(key, len(self._order), Early(self._folder(key[1]), key[2],
                                                          self._session_server))  # fmt: skip
                self._slots[key] = slot
            past = [
                s
                for s in self._order[: slot.index]
                if s.key[0] != key[0] and s.state in ("planned", "starting", "started")
            ]
            for other in past:  # earlier modules' starts that no test took: never will
                other.dropped = True
            here = slot.state == "planned"
            if here:
                slot.state = "starting"
            self._lock.notify_all()
        for other in past:
            if other.state == "started":
                self._close(other)
        if here:
            self._start(slot)
        slot.done.wait()
        if slot.error is not None:
            self._close(slot)
            raise slot.error
        with self._lock:
            slot.state = "taken"
            self._lock.notify_all()
        try:
            yield slot.value
        finally:
            self._close(slot)

    def close(self) -> None:
        """Session end: stop the thread after its current start, and whatever no test took."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._thread.join()
        for slot in self._order:
            if slot.state == "started":
                self._close(slot)
