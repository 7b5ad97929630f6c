"""The entry point imports without ComfyUI and exposes what ComfyUI reads."""

from __future__ import annotations

import re
from pathlib import Path

from plugin_loader import load_plugin_package


def test_entry_point_exposes_nodes_and_web_directory():
    plugin = load_plugin_package()
    assert plugin.WEB_DIRECTORY == "./web"
    assert set(plugin.NODE_CLASS_MAPPINGS) == set(plugin.NODE_DISPLAY_NAME_MAPPINGS)
    for node in plugin.NODE_CLASS_MAPPINGS.values():
        assert callable(getattr(node, node.FUNCTION))
        assert "required" in node.INPUT_TYPES()


def test_node_helpers():
    from parallel_runs_node.nodes.progress_note import render_note
    from parallel_runs_node.nodes.slow_passthrough import progress_line

    assert render_note("{width}x{height} b{batch} {other}", 64, 32, 2) == "64x32 b2 {other}"
    assert progress_line(1, 4, 2.0) == "step 1/4, 1.5 s left"
    assert progress_line(4, 4, 2.0) == "step 4/4, 0.0 s left"


def test_the_version_comes_from_pyproject_alone(tmp_path):
    from parallel_runs_node.parallel_runs.version import read_version

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M).group(1)
    assert load_plugin_package().__version__ == declared == read_version()
    other = tmp_path / "pyproject.toml"
    other.write_text('[tool.x]\nversion = "9"\n[project]\nname = "p"\nversion = "1.2.3"\n')
    assert read_version(other) == "1.2.3"  # [project]'s, not another table's


def test_the_tests_hold_one_copy_of_the_library():
    """Everything in this process imports the library as the custom node's sub-package, as
    ComfyUI does: a second copy would make `except` clauses and isinstance checks miss."""
    import sys

    second = sorted(
        n for n in sys.modules if n == "parallel_runs" or n.startswith("parallel_runs.")
    )
    assert second == []
