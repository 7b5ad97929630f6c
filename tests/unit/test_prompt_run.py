"""Following one prompt from its events, routing events between prompts, and the small
pieces around it (errors, formats, previews, uploads), without a server."""

from __future__ import annotations

import json
import struct

import pytest

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient, Event
from parallel_runs_node.parallel_runs.client.connector import Connector, PromptHandle
from parallel_runs_node.parallel_runs.client.errors import (
    PromptFailed,
    PromptInterrupted,
    PromptRejected,
)
from parallel_runs_node.parallel_runs.client.previews import decode_preview, encode_preview
from parallel_runs_node.parallel_runs.client.prompt_run import (
    OutputFile,
    PromptRun,
    RunResult,
    RunStatus,
    output_refs,
)
from parallel_runs_node.parallel_runs.client.uploads import (
    Upload,
    ephemeral_name,
    local_path,
    rewrite_inputs,
)
from parallel_runs_node.parallel_runs.convert.prompt_format import (
    UnknownFormat,
    api_prompt,
    detect_format,
)
from parallel_runs_node.parallel_runs.progress_text import encode_scoped

PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {}},
    "2": {"class_type": "ParallelRunsSlowPassthrough", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}},
}
IMAGE = {"filename": "a_00001_.png", "subfolder": "", "type": "output"}


def events(prompt_id: str) -> list[Event]:
    """What ComfyUI 0.3.75 sends for PROMPT with node 1 cached (shapes copied from a run)."""
    p = {"prompt_id": prompt_id}
    return [
        Event("execution_start", p),
        Event("execution_cached", {**p, "nodes": ["1"]}),
        Event("executing", {**p, "node": "2", "display_node": "2"}),
        Event("progress", {**p, "node": "2", "value": 1, "max": 4}),
        Event("progress_text", {**p, "node": "2", "text": "step 1/4"}),
        Event("progress", {**p, "node": "2", "value": 4, "max": 4}),
        Event("executing", {**p, "node": "3", "display_node": "3"}),
        Event("executed", {**p, "node": "3", "display_node": "3", "output": {"images": [IMAGE]}}),
        Event("execution_success", p),
        Event("executing", {**p, "node": None}),
    ]


def test_a_run_follows_its_events_to_success():
    run = PromptRun("p1", PROMPT)
    seen = []
    for event in events("p1"):
        finished = run.apply(event)
        seen.append((run.status, round(run.fraction(), 2), finished))
    assert seen[0] == (RunStatus.RUNNING, 0.0, False)
    assert [f for _, f, _ in seen] == sorted(f for _, f, _ in seen)  # never goes backwards
    assert seen[3][1] == round((1 + 1 / 4) / 3, 2)  # node 1 cached, node 2 a quarter done
    assert seen[-2] == (RunStatus.SUCCESS, 1.0, True)
    assert run.cached == {"1"} and run.executed >= {"2", "3"}
    assert run.progress_text == {"2": "step 1/4"}
    assert run.outputs == {"3": {"images": [IMAGE]}}
    assert run.node_type("2") == "ParallelRunsSlowPassthrough"


def test_events_after_the_end_change_nothing():
    run = PromptRun("p1", PROMPT)
    for event in events("p1"):
        run.apply(event)
    run.apply(Event("execution_error", {"prompt_id": "p1", "node_id": "2"}))
    assert run.status == RunStatus.SUCCESS and run.error is None


def test_an_error_becomes_a_one_line_exception():
    run = PromptRun("p1", PROMPT)
    run.apply(Event("execution_start", {"prompt_id": "p1"}))
    details = {
        "prompt_id": "p1",
        "node_id": "2",
        "node_type": "ParallelRunsSlowPassthrough",
        "exception_type": "ValueError",
        "exception_message": "bad value\n\nSome tips that ComfyUI appends",
        "traceback": ["..."],
    }
    assert run.apply(Event("execution_error", details))
    result = RunResult("p1", run.status, None, {}, [], run.error)
    with pytest.raises(PromptFailed) as caught:
        result.raise_for_status()
    assert str(caught.value) == (
        "prompt p1 failed in node 2 (ParallelRunsSlowPassthrough): ValueError: bad value"
    )


def test_an_interruption_names_the_node():
    run = PromptRun("p1", PROMPT)
    data = {"prompt_id": "p1", "node_id": "2", "node_type": "ParallelRunsSlowPassthrough"}
    run.apply(Event("execution_interrupted", data))
    result = RunResult("p1", run.status, None, {}, [], run.error)
    with pytest.raises(PromptInterrupted, match=r"^prompt p1 was interrupted in node 2 \("):
        result.raise_for_status()


def test_output_refs_finds_files_under_any_key_and_filters_types():
    outputs = {
        "3": {"images": [IMAGE, {**IMAGE, "type": "temp"}]},
        "4": {"text": ["hello"]},
        "5": {"gifs": [{"filename": "v.mp4", "subfolder": "s", "type": "output"}]},
    }
    assert output_refs(outputs, ("output",)) == [("3", IMAGE), ("5", outputs["5"]["gifs"][0])]
    assert len(output_refs(outputs, ("output", "temp"))) == 3


@pytest.mark.parametrize(
    ("filename", "safe"),
    [
        ("a.png", "a.png"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\x.png", "x.png"),
        ("..", "output"),
    ],
)
def test_output_file_names_cannot_leave_the_folder(filename, safe):
    assert OutputFile("3", filename, "", "output", b"").safe_name == safe


def test_rejection_message_lists_node_errors():
    body = {  # ComfyUI 0.3.75's answer for a LoadImage naming a missing file
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            "1": {
                "errors": [
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": "image - Invalid image file: x.png",
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": ["3"],
                "class_type": "LoadImage",
            }
        },
    }
    assert str(PromptRejected(400, body)) == (
        "prompt rejected: Prompt outputs failed validation; node 1 (LoadImage): "
        "Custom validation failed for node: image - Invalid image file: x.png"
    )


def test_formats_are_told_apart():
    assert detect_format(PROMPT) == "api"
    assert detect_format({"prompt": PROMPT}) == "api"
    assert api_prompt({"prompt": PROMPT}) == PROMPT
    assert detect_format({"nodes": [], "links": [], "version": 0.4}) == "ui"
    for bad in ({}, [], {"1": {"inputs": {}}}, "text"):
        with pytest.raises(UnknownFormat):
            detect_format(bad)


def test_previews_decode_with_and_without_metadata():
    meta = {"node_id": "7", "display_node_id": "7", "prompt_id": "p9", "image_type": "image/png"}
    assert decode_preview(4, encode_preview(meta, b"PNG")) == {
        "image_type": "image/png",
        "image": b"PNG",
        "prompt_id": "p9",
        "node": "7",
        "display_node": "7",
    }
    assert decode_preview(1, struct.pack(">I", 2) + b"PNG") == {
        "image_type": "image/png",
        "image": b"PNG",
    }
    with pytest.raises(ValueError):
        decode_preview(4, struct.pack(">I", 99) + b"{}")
    frame = struct.pack(">I", 4) + encode_preview(meta, b"JPG")
    assert ComfyClient("http://x").decode_binary(frame).type == "preview"


def test_uploads_get_unique_names_and_prompts_are_rewritten(tmp_path):
    first, second = ephemeral_name("photo.png"), ephemeral_name("photo.png")
    assert first != second and first.startswith("photo.pr-") and first.endswith(".png")
    upload = Upload("photo.png", first, "sub", "input", True)
    assert upload.reference == f"sub/{first}"
    assert local_path(upload, tmp_path) == (tmp_path / "sub" / first).resolve()
    with pytest.raises(ValueError):
        local_path(Upload("x", "../../x", "", "input", True), tmp_path)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "photo.png", "n": 1}}}
    rewritten = rewrite_inputs(prompt, {"photo.png": upload.reference})
    assert rewritten["1"]["inputs"] == {"image": f"sub/{first}", "n": 1}
    assert prompt["1"]["inputs"]["image"] == "photo.png"  # the original is left alone


async def test_events_reach_only_their_own_prompt():
    connector = Connector("http://127.0.0.1:1")  # never connected: routing needs no socket
    handles = {}
    for prompt_id in ("a", "b"):
        handles[prompt_id] = PromptHandle(connector, PromptRun(prompt_id, PROMPT))
        connector._runs[prompt_id] = handles[prompt_id]
    stream = [
        Event("status", {"status": {"exec_info": {"queue_remaining": 2}}}),
        Event("execution_start", {"prompt_id": "a"}),
        Event("progress_text", {"node": "2", "text": "legacy text"}),  # no prompt id: a's
        Event("preview", {"image_type": "image/jpeg", "image": b"J"}),  # likewise
        Event("progress_text", {"prompt_id": "b", "node": "2", "text": "scoped"}),
        Event("execution_interrupted", {"prompt_id": "someone-else", "node_id": "2"}),
        Event("progress", {"prompt_id": "a", "node": "2", "value": 1, "max": 2}),
    ]
    for event in stream:
        connector.dispatch(event)
    got = {k: [e.type for e in _drain(h)] for k, h in handles.items()}
    assert got == {
        "a": ["execution_start", "progress_text", "preview", "progress"],
        "b": ["progress_text"],
    }
    assert handles["a"].run.progress_text == {"2": "legacy text"}
    assert handles["a"].run.preview["node"] is None and handles["a"].run.preview["image"] == b"J"
    assert handles["b"].run.progress_text == {"2": "scoped"}
    assert handles["b"].run.status == RunStatus.QUEUED


def _drain(handle: PromptHandle) -> list[Event]:
    items = []
    while not handle._events.empty():
        items.append(handle._events.get_nowait())
    return items


def test_scoped_progress_text_frames_keep_their_prompt_id():
    client = ComfyClient("http://x")
    client.server_flags = {"supports_progress_text_metadata": True}
    frame = struct.pack(">I", 3) + encode_scoped("p1", "2", "hi")
    assert client.decode_binary(frame) == Event(
        "progress_text", {"node": "2", "text": "hi", "prompt_id": "p1"}
    )
    assert json.loads(json.dumps(client.feature_flags)) == {
        "supports_progress_text_metadata": True,
        "supports_preview_metadata": True,
    }
