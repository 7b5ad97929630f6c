"""Prompt-scoped progress text against a real ComfyUI with real websocket clients.

Clients share one server; their prompts use the same node ids, so any cross-talk would show.
- A: advertises the flag (as the current frontend does): scoped binary frames only.
- B: a script that never sends feature flags: legacy frames plus `parallel.progress_text`.
- C: an older frontend (flags, but not this one): like B; its note is non-ASCII.
- O: an observer that queues nothing: must receive no progress text at all.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest
from graphs import slow_note_graph

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient, Event
from parallel_runs_node.parallel_runs.progress_text import FEATURE_FLAG

pytestmark = pytest.mark.comfy

LONG_NOTE = "long " + "x" * 100_000 + " end"
SIZE_TEXT = "width: 64, height: 32\n batch size: 1"  # what core's GetImageSize reports


@dataclass
class Session:
    client: ComfyClient
    prompts: dict[str, str] = field(default_factory=dict)  # prompt id -> note
    events: list[Event] = field(default_factory=list)

    def of(self, kind: str) -> list[dict]:
        return [e.data for e in self.events if e.type == kind]


async def listen(session: Session, ready: asyncio.Event, timeout: float = 90) -> None:
    """Record events until our prompts are done and the server's queue has drained."""
    finished: set[str] = set()
    saw_work = False

    async def run() -> None:
        nonlocal saw_work
        async for event in session.client.events():
            session.events.append(event)
            if event.type == "status":
                ready.set()
                remaining = event.data["status"]["exec_info"]["queue_remaining"]
                saw_work = saw_work or remaining > 0
                if saw_work and remaining == 0 and finished >= set(session.prompts):
                    return
            elif event.type in ("execution_success", "execution_error"):
                finished.add(event.data["prompt_id"])

    await asyncio.wait_for(run(), timeout)


async def scenario(url: str) -> dict[str, Session]:
    tag = uuid.uuid4().hex[:6]
    sessions = {
        "A": Session(ComfyClient(url)),
        "B": Session(ComfyClient(url, feature_flags=None)),
        "C": Session(ComfyClient(url, feature_flags={"supports_preview_metadata": True})),
        "O": Session(ComfyClient(url)),
    }
    notes = {
        "A": [f"A-{tag} {{width}}x{{height}}", "", LONG_NOTE],
        "B": [f"B-{tag} batch {{batch}}"],
        "C": [f"C-{tag} ünïcödé 日本語 🎨 {{batch}}"],
    }
    for session in sessions.values():
        await session.client.connect()
    readiness = {name: asyncio.Event() for name in sessions}
    listeners = [asyncio.create_task(listen(s, readiness[n])) for n, s in sessions.items()]
    await asyncio.gather(*(r.wait() for r in readiness.values()))
    try:
        first = True
        for name in ("A", "B", "C"):
            for note in notes[name]:
                prompt = slow_note_graph(
                    note, seconds=1.2 if first else 0.3, output="size_text"
                )  # the rest queue behind it
                first = False
                sessions[name].prompts[await sessions[name].client.queue(prompt)] = note
        await asyncio.gather(*listeners)
    finally:
        for session in sessions.values():
            await session.client.close()
    return sessions


@pytest.fixture(scope="module")
def sessions(comfy_server) -> dict[str, Session]:
    return asyncio.run(scenario(comfy_server.url))


def rendered(note: str) -> str:
    return note.replace("{width}", "64").replace("{height}", "32").replace("{batch}", "1")


def expected_texts(note: str) -> list[tuple[str, str]]:
    slow = [("2", f"step {i}/3, {left} s left") for i, left in ((1, "x"), (2, "x"), (3, "0.0"))]
    return [*slow, ("3", rendered(note)), ("4", SIZE_TEXT)]


def assert_texts(got: list[dict], note: str) -> None:
    """Node 2 reports three steps (timings vary), then the note, then core's size text."""
    pairs = [(d["node"], d["text"]) for d in got]
    assert [n for n, _ in pairs] == ["2", "2", "2", "3", "4"]
    assert [t.split(",")[0] for _, t in pairs[:3]] == ["step 1/3", "step 2/3", "step 3/3"]
    assert pairs[3:] == expected_texts(note)[3:]


def test_the_scenario_ran_every_prompt(sessions):
    for name in "ABC":
        session = sessions[name]
        assert {d["prompt_id"] for d in session.of("execution_success")} == set(session.prompts)


def test_flagged_client_gets_only_its_own_scoped_frames(sessions):
    a = sessions["A"]
    assert a.client.server_flags.get(FEATURE_FLAG) is True
    frames = a.of("progress_text")
    assert {f["prompt_id"] for f in frames} == set(a.prompts)
    for prompt_id, note in a.prompts.items():
        assert_texts([f for f in frames if f["prompt_id"] == prompt_id], note)
    assert a.of("parallel.progress_text") == []  # it can decode the binary layout itself


def test_empty_and_very_long_texts_arrive_intact(sessions):
    a = sessions["A"]
    notes_seen = {f["text"] for f in a.of("progress_text") if f["node"] == "3"}
    assert "" in notes_seen
    assert LONG_NOTE in notes_seen


@pytest.mark.parametrize("name", ["B", "C"])
def test_unflagged_clients_get_legacy_frames_and_the_json_event(sessions, name):
    session = sessions[name]
    ((prompt_id, note),) = session.prompts.items()
    frames = session.of("progress_text")
    assert all("prompt_id" not in f for f in frames)  # legacy layout, decoded as legacy
    assert_texts(frames, note)
    events = session.of("parallel.progress_text")
    assert {e["prompt_id"] for e in events} == {prompt_id}
    assert [(e["node"], e["text"]) for e in events] == [(f["node"], f["text"]) for f in frames]
    assert all(e["display_node"] == e["node"] for e in events)


def test_non_ascii_survives(sessions):
    texts = [f["text"] for f in sessions["C"].of("progress_text") if f["node"] == "3"]
    assert texts and "ünïcödé 日本語 🎨" in texts[0]


def test_observer_receives_no_progress_text(sessions):
    observer = sessions["O"]
    assert observer.of("progress_text") == []
    assert observer.of("parallel.progress_text") == []
    assert any(e.type == "status" for e in observer.events)  # it was listening all along
