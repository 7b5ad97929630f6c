"""The one module for names and paths from elsewhere: plain names, containment, unique names."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_runs_node.parallel_runs.files import (
    MAX_NAME,
    UnsafeFileName,
    inside,
    plain_name,
    unique_name,
    unique_names,
)


@pytest.mark.parametrize(
    ("name", "plain"),
    [
        ("../../escape.png", "escape.png"),
        ("C:\\Users\\x\\photo (1).png", "photo _1_.png"),
        (".hidden.png", "hidden.png"),
        ("CON.png", "_CON.png"),
        ("nul", "_nul"),
        ("a" * 300 + ".png", "a" * (MAX_NAME - 4) + ".png"),
        ("", "output.png"),
        ("..", "output.png"),
        (": .:", "output.png"),  # only filler left once cleaned
        ("nul\x00byte.png", "nulbyte.png"),
    ],
)
def test_plain_names(name, plain):
    assert plain_name(name) == plain


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_a_plain_name_is_always_a_bare_name(name):
    plain = plain_name(name)
    assert os.path.basename(plain) == plain and not plain.startswith(".")
    assert 0 < len(plain) <= MAX_NAME and plain_name(plain) == plain


def test_inside_keeps_paths_in_their_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    assert inside(tmp_path, "sub/x.png") == (tmp_path / "sub" / "x.png").resolve()
    (tmp_path / "link").symlink_to(tmp_path.parent, target_is_directory=True)
    for hostile in ("../x.png", "/etc/passwd", "C:x.png", "sub/../../x", "link/x.png", "a\x00b"):
        with pytest.raises(UnsafeFileName):
            inside(tmp_path, hostile)


def test_unique_names_are_fixed_by_the_order():
    names = ["a.png", "A.png", "a.png", "a_1.png", "b"]
    assert unique_names(names) == ["a.png", "A_1.png", "a_2.png", "a_1_1.png", "b"]
    assert unique_names(names) == unique_names(names)
    taken = {"x.png"}
    assert unique_name("x.png", taken, separator="-") == "x-1.png" and "x-1.png" in taken
