"""The entry point imports without ComfyUI and exposes what ComfyUI reads."""

from __future__ import annotations

from conftest import load_plugin_package


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
