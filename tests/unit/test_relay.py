"""The relay's pure parts: worker progress -> ComfyUI events, and the poll planner's budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_runs_node.server_routes.job_registry import JobError
from parallel_runs_node.server_routes.poll_planner import PollPlanner
from parallel_runs_node.server_routes.relay_events import EventMapper, worker_error_text

TYPES = {"1": "EmptyImage", "2": "KSampler", "3": "SaveImage"}


def progress(**fields) -> dict:
    return {"kind": "progress", **fields}


def test_progress_maps_to_comfy_events():
    mapper = EventMapper("p1", TYPES)
    assert [e for e, _ in mapper.start()] == ["execution_start"]
    assert mapper.start() == []  # once

    events = mapper.progress(progress(node="2", value=3, max=10, executing="2", nodes_done=["1"]))
    assert [e for e, _ in events] == ["executing", "progress", "progress_state"]
    assert events[0][1] == {"node": "2", "display_node": "2", "prompt_id": "p1"}
    assert events[1][1] == {"value": 3, "max": 10, "prompt_id": "p1", "node": "2"}
    nodes = events[2][1]["nodes"]
    assert nodes["1"]["state"] == "finished" and nodes["2"]["state"] == "running"
    assert nodes["2"]["value"] == 3 and nodes["2"]["real_node_id"] == "2"
    assert (mapper.progress_node, mapper.node_fraction) == ("2", 0.3)

    assert mapper.progress(progress(node="2", value=3, max=10, executing="2")) == []  # no change
    text = mapper.progress(progress(executing="2", text={"2": "step 4"}))
    assert text == [
        (
            "parallel.progress_text",
            {"prompt_id": "p1", "node": "2", "display_node": "2", "text": "step 4"},
        )
    ]


def test_garbage_progress_is_ignored():
    mapper = EventMapper("p1", TYPES)
    for value in (None, "text", [1, 2], {"kind": "other"}, {"value": "x"}):
        assert mapper.progress(value) == []


def test_endings_have_comfy_shapes():
    mapper = EventMapper("p1", TYPES)
    mapper.progress(progress(executing="2", nodes_done=["1"]))
    (error,) = mapper.error(JobError(type="RemoteError", message="boom"))
    assert error[0] == "execution_error"
    assert error[1]["node_id"] == "2" and error[1]["node_type"] == "KSampler"
    assert error[1]["executed"] == ["1"] and error[1]["exception_message"] == "boom"
    (interrupted,) = mapper.interrupted()
    assert interrupted[1]["node_id"] == "2" and interrupted[0] == "execution_interrupted"
    assert [e for e, _ in mapper.success()] == ["executing", "execution_success"]
    assert mapper.success()[0][1]["node"] is None


def test_worker_errors_are_made_readable():
    sdk = '{"error_type": "ValueError", "error_message": "bad seed", "error_traceback": "..."}'
    assert worker_error_text(sdk) == ("ValueError", "bad seed")
    assert worker_error_text("plain text") == ("RemoteError", "plain text")
    assert worker_error_text(None)[1]


phases = st.lists(
    st.tuples(
        st.sampled_from(["IN_QUEUE", "IN_PROGRESS", None]),
        st.one_of(st.none(), st.floats(-5, 30)),
        st.booleans(),  # True: a sibling woke us up early (we re-plan without polling)
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(phases)
def test_the_poll_budget_holds_whatever_happens(steps):
    planner = PollPlanner(started=100.0)
    now = 100.0
    for remote, remaining, woken in steps:
        delay = planner.delay(now, remote, remaining)
        assert delay >= 0
        now += delay / 3 if woken else delay
        if not woken:
            planner.spend(now)
            assert planner.polls <= planner.rate * (now - planner.started) + 1e-9


def test_polls_cluster_around_the_expected_end():
    planner = PollPlanner(started=0.0)
    now, polls = 0.0, []
    while now < 6.0:
        remaining = 5.0 - now  # the job should end at t=5
        now += planner.delay(now, "IN_PROGRESS", remaining)
        planner.spend(now)
        polls.append(round(now, 2))
    before = [t for t in polls if t < 4.5]
    around = [t for t in polls if 4.5 <= t <= 5.5]
    assert len(before) <= 4 and len(around) >= 3, polls
    assert min(t for t in polls if t >= 5.0) <= 5.15  # the end is seen within ~0.1 s
