"""Remote result files: hostile names refused, benign ones made plain, contents that match their
extension, nothing written outside the output folder, size and count limits kept, and saving
the same result twice leaves one copy of each file."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runpod_fake import png_bytes

from parallel_runs_node.server_routes.executors.outputs import (
    OutputSaver,
    UnsafeFileName,
    content_matches,
    safe_filename,
)

PNG = png_bytes()

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
        ("CON.png", "_CON.png"),
        ("nul.png", "_nul.png"),
        ("Com1.tar.webp", "_Com1.tar.webp"),
        ("lpt9 .png", "_lpt9 .png"),
        ("console.png", "console.png"),
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


def test_save_images_writes_under_the_subfolder_with_unique_names(tmp_path):
    saver = OutputSaver(tmp_path / "output")
    two = png_bytes(rgb=(1, 2, 3))
    images = [
        {"filename": "a.png", "type": "base64", "data": b64(PNG)},
        {"filename": "A.png", "type": "base64", "data": "data:image/png;base64," + b64(two)},
        {"filename": "../../evil.png", "type": "base64", "data": b64(PNG)},
        {"filename": "b.png", "type": "s3_url", "data": "https://example.invalid/b.png"},
        {"filename": "c.png", "type": "base64", "data": "not base64 !!"},
        "not an object",
    ]
    report = saver.save_images("parallel-runs/p1", images)
    assert [s["filename"] for s in report.saved] == ["a.png", "A_1.png"]
    assert report.sources == [0, 1]
    assert len(report.refused) == 4
    assert "parent" in report.refused[0] and "s3_url" in report.refused[1]
    folder = tmp_path / "output" / "parallel-runs" / "p1"
    assert (folder / "a.png").read_bytes() == PNG
    assert (folder / "A_1.png").read_bytes() == two
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["A_1.png", "a.png"]


def test_saving_again_after_a_crash_mid_save_leaves_one_copy_of_each(tmp_path, monkeypatch):
    from parallel_runs_node.server_routes.executors import outputs as output_files

    images = [{"filename": "same.png", "data": b64(png_bytes(rgb=(i, 0, 0)))} for i in range(30)]
    real, written = output_files._replace_file, []

    def crash_after_nine(folder, name, data):
        if len(written) == 9:
            (folder / ".parallel-runs-dead.part").write_bytes(data[:5])  # a half-written temp
            raise KeyboardInterrupt  # as if the process died here
        real(folder, name, data)
        written.append(name)

    monkeypatch.setattr(output_files, "_replace_file", crash_after_nine)
    with pytest.raises(KeyboardInterrupt):
        OutputSaver(tmp_path).save_images("parallel-runs/p1", images)
    monkeypatch.setattr(output_files, "_replace_file", real)
    report = OutputSaver(tmp_path).save_images("parallel-runs/p1", images)
    files = sorted((tmp_path / "parallel-runs" / "p1").iterdir())
    assert len(report.saved) == 30 and len(files) == 30
    assert {f.name for f in files} == {s["filename"] for s in report.saved}
    for saved, image in zip(report.saved, images, strict=True):
        assert (
            b64((tmp_path / "parallel-runs" / "p1" / saved["filename"]).read_bytes())
            == (image["data"])
        )


@pytest.mark.parametrize(
    ("name", "data", "ok"),
    [
        ("x.png", PNG, True),
        ("x.png", b"<html><script>alert(1)</script></html>", False),
        ("x.jpg", PNG, False),
        ("x.jpeg", b"\xff\xd8\xff\xe0rest", True),
        ("x.webp", b"RIFF\x00\x00\x00\x00WEBPVP8 ", True),
        ("x.wav", b"RIFF\x00\x00\x00\x00WEBP", False),
        ("x.mp4", b"\x00\x00\x00\x18ftypmp42", True),
        ("x.gif", b"GIF89a...", True),
        ("x.mp3", b"ID3\x04", True),
        ("x.glb", b"glTF\x02", True),
        ("x.json", b'{"a": 1}', True),
        ("x.txt", "plain ünï text".encode(), True),
        ("x.txt", b"\x00\x01binary", False),
        ("x.txt", b"\xff\xfe not utf-8", False),
    ],
)
def test_contents_must_match_the_extension(name, data, ok):
    assert content_matches(name, data) is ok


def test_one_result_keeps_at_most_max_files(tmp_path):
    images = [{"filename": f"f{i}.png", "data": b64(PNG)} for i in range(12)]
    report = OutputSaver(tmp_path, max_files=10).save_images("s", images)
    assert len(report.saved) == 10 and report.sources == list(range(10))
    assert report.refused == ["2 more result file(s) not saved: one result keeps at most 10 files"]
    assert len(list((tmp_path / "s").iterdir())) == 10


def test_an_html_page_named_png_is_not_saved(tmp_path):
    page = b"<html><body>not an image</body></html>"
    report = OutputSaver(tmp_path).save_images("s", [{"filename": "x.png", "data": b64(page)}])
    assert report.saved == [] and "contents are not a .png file" in report.refused[0]
    assert not (tmp_path / "s").exists()


def test_sizes_are_limited_per_file_and_in_total(tmp_path):
    saver = OutputSaver(tmp_path, max_file_bytes=10, max_total_bytes=15)
    report = saver.save_images(
        "s",
        [
            {"filename": "big.txt", "data": b64(b"x" * 11)},
            {"filename": "ok.txt", "data": b64(b"x" * 10)},
            {"filename": "over.txt", "data": b64(b"x" * 6)},
            {"filename": "fits.txt", "data": b64(b"x" * 5)},
        ],
    )
    assert [s["filename"] for s in report.saved] == ["ok.txt", "fits.txt"]
    assert report.total_bytes == 15
    assert all("too large" in reason for reason in report.refused)


def test_a_symlinked_subfolder_cannot_lead_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "output"
    (root / "parallel-runs").mkdir(parents=True)
    (root / "parallel-runs" / "p1").symlink_to(outside, target_is_directory=True)
    image = {"filename": "a.png", "data": b64(PNG)}
    report = OutputSaver(root).save_images("parallel-runs/p1", [image])
    assert report.saved == [] and "leaves the output folder" in report.refused[0]
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("subfolder", ["../x", "/abs", "a/../../b", "", "a\\b"])
def test_bad_subfolders_are_refused(tmp_path, subfolder):
    with pytest.raises(UnsafeFileName):
        OutputSaver(tmp_path).folder(subfolder)
