"""The CLI without a server: arguments, readable failures, progress lines, saved files."""

from __future__ import annotations

import io
import json

import pytest

from parallel_runs_node.parallel_runs.cli import main, save_files, spread
from parallel_runs_node.parallel_runs.client.comfy_client import Event
from parallel_runs_node.parallel_runs.client.process import free_port
from parallel_runs_node.parallel_runs.client.prompt_run import (
    OutputFile,
    PromptRun,
    RunResult,
    RunStatus,
)
from parallel_runs_node.parallel_runs.progress_bars import ProgressBoard, render

PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {}},
    "2": {"class_type": "ParallelRunsSlowPassthrough", "inputs": {"image": ["1", 0]}},
}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workflow(tmp_path):
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(PROMPT))
    return path


def test_a_server_choice_is_required(workflow, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", str(workflow)])
    assert caught.value.code == 2
    assert "one of the arguments --server --start is required" in capsys.readouterr().err


def test_unreachable_server_is_one_line(workflow):
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_cli("run", str(workflow), "--server", url)
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot reach ComfyUI at {url}")
    assert len(err.splitlines()) == 1


def test_unreadable_workflow_fails_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run_cli("run", str(bad), "--server", "http://127.0.0.1:1")
    assert code == 2
    assert err.startswith(f"error: {bad}: cannot read a JSON workflow: ")
    code, _, err = run_cli("run", str(tmp_path / "missing.json"), "--server", "http://x")
    assert code == 2 and "missing.json: cannot read a JSON workflow" in err


def test_missing_input_file_is_a_usage_error(workflow, tmp_path):
    code, _, err = run_cli(
        "run", str(workflow), "--server", "http://127.0.0.1:1", "--input", str(tmp_path / "no.png")
    )
    assert (code, err) == (2, f"error: --input {tmp_path / 'no.png'}: no such file\n")


def test_start_needs_a_comfyui(workflow, monkeypatch, tmp_path):
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    code, _, err = run_cli("run", str(workflow), "--start", "--comfy-dir", str(tmp_path))
    assert code == 2 and "--start needs --comfy-dir DIR (or COMFYUI_PATH)" in err


def test_saved_files_never_overwrite_or_escape(tmp_path):
    files = [
        OutputFile("3", "a.png", "", "output", b"1"),
        OutputFile("3", "../a.png", "", "output", b"2"),
        OutputFile("4", "/etc/passwd", "", "output", b"3"),
    ]
    result = RunResult("p", RunStatus.SUCCESS, {}, {}, files)
    out = tmp_path / "out"
    written = save_files(result, out)
    assert [p.name for p in written] == ["a.png", "a-1.png", "passwd"]
    assert [p.read_bytes() for p in written] == [b"1", b"2", b"3"]
    assert all(p.parent == out for p in written)


def running_run() -> PromptRun:
    run = PromptRun("p1", PROMPT)
    run.status, run.current_node = RunStatus.RUNNING, "2"
    run.cached.add("1")
    run.apply(Event("progress", {"node": "2", "value": 3, "max": 10}))
    run.progress_text["2"] = "step 3/10, 1.4 s left\nmore"
    return run


def test_render_shows_bar_node_and_text():
    line = render("wf", running_run(), width=10)
    assert line == (
        "wf [######....]  65%  running  node 2 (ParallelRunsSlowPassthrough) 3/10"
        "  step 3/10, 1.4 s left"
    )


def test_without_a_tty_each_change_is_one_plain_line():
    stream = io.StringIO()
    board = ProgressBoard(stream)
    run = running_run()
    board.update("wf", run)
    board.update("wf", run)  # unchanged: not printed again
    run.status = RunStatus.SUCCESS
    board.update("wf", run)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].endswith("100%  success")
    assert "\x1b" not in stream.getvalue()


def test_on_a_tty_each_prompt_has_its_own_bar():
    stream = io.StringIO()
    board = ProgressBoard(stream, tty=True)
    first, second = running_run(), running_run()
    board.update("a", first)
    board.update("b", second)
    second.status = RunStatus.SUCCESS
    board.update("b", second)
    board.close()
    drawn = stream.getvalue()
    assert " 65%, running  node 2 (ParallelRunsSlowPassthrough) 3/10" in drawn
    assert "100%, success" in drawn
    assert "\x1b[A" in drawn  # the second bar sits below the first and is redrawn there


def test_workflows_spread_to_the_server_with_the_fewest_prompts():
    assert spread([0, 0], 4) == [0, 1, 0, 1]
    assert spread([3, 0, 1], 4) == [1, 1, 2, 1]  # the busy one gets none
    assert spread([0], 3) == [0, 0, 0]
