"""Remote result files: hostile names refused, benign ones made plain, nothing written outside
the output folder, no file replaced, size limits kept."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_runs_node.server_routes.output_files import (
    OutputSaver,
    UnsafeFileName,
    safe_filename,
)

HOSTILE = [
    "../../escape.png",
    "/etc/passwd",
    "/abs/x.png",
    "\\\\server\\share\\x.png",
    "..\\..\\windows.png",
    "sub/dir/../../x.png",
    "nul\x00byte.png",
    "C:evil.png",
    "c:\\windows\\x.png",
    "",
    "   ",
    "..",
    "CON",  # no extension
    "x.exe",
    "page.html",
    None,
    42,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(UnsafeFileName):
        safe_filename(name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ComfyUI_00001_.png", "ComfyUI_00001_.png"),
        ("sub/dir/x.PNG", "sub_dir_x.png"),
        ("we ird$name;rm -rf.webp", "we ird_name_rm -rf.webp"),
        (".hidden.png", "hidden.png"),
        ("a" * 300 + ".png", "a" * 116 + ".png"),
        ("ünïcode.jpg", "_n_code.jpg"),
    ],
)
def test_benign_names_become_plain(name, expected):
    assert safe_filename(name) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=60))
def test_any_name_stays_inside_the_folder(name):
    try:
        safe = safe_filename(name)
    except UnsafeFileName:
        return
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert safe not in (".", "..") and not safe.startswith(".")
    assert os.path.basename(safe) == safe


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_save_images_writes_under_the_subfolder_and_never_replaces(tmp_path):
    saver = OutputSaver(tmp_path / "output")
    images = [
        {"filename": "a.png", "type": "base64", "data": b64(b"one")},
        {"filename": "a.png", "type": "base64", "data": "data:image/png;base64," + b64(b"two")},
        {"filename": "../../evil.png", "type": "base64", "data": b64(b"x")},
        {"filename": "b.png", "type": "s3_url", "data": "https://example.invalid/b.png"},
        {"filename": "c.png", "type": "base64", "data": "not base64 !!"},
        "not an object",
    ]
    report = saver.save_images("parallel-runs/p1", images)
    assert [s["filename"] for s in report.saved] == ["a.png", "a_1.png"]
    assert report.sources == [0, 1]
    assert len(report.refused) == 4
    assert "parent" in report.refused[0] and "s3_url" in report.refused[1]
    folder = tmp_path / "output" / "parallel-runs" / "p1"
    assert (folder / "a.png").read_bytes() == b"one"
    assert (folder / "a_1.png").read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.png", "a_1.png"]


def test_sizes_are_limited_per_file_and_in_total(tmp_path):
    saver = OutputSaver(tmp_path, max_file_bytes=10, max_total_bytes=15)
    report = saver.save_images(
        "s",
        [
            {"filename": "big.png", "data": b64(b"x" * 11)},
            {"filename": "ok.png", "data": b64(b"x" * 10)},
            {"filename": "over.png", "data": b64(b"x" * 6)},
            {"filename": "fits.png", "data": b64(b"x" * 5)},
        ],
    )
    assert [s["filename"] for s in report.saved] == ["ok.png", "fits.png"]
    assert report.total_bytes == 15
    assert all("too large" in reason for reason in report.refused)


def test_a_symlinked_subfolder_cannot_lead_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "output"
    (root / "parallel-runs").mkdir(parents=True)
    (root / "parallel-runs" / "p1").symlink_to(outside, target_is_directory=True)
    report = OutputSaver(root).save_images("parallel-runs/p1", [{"filename": "a.png", "data": ""}])
    assert report.saved == [] and "leaves the output folder" in report.refused[0]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("subfolder", ["../x", "/abs", "a/../../b", "", "a\\b"])
def test_bad_subfolders_are_refused(tmp_path, subfolder):
    with pytest.raises(UnsafeFileName):
        OutputSaver(tmp_path).folder(subfolder)
