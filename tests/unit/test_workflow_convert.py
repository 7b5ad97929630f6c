"""UI-format workflow -> API prompt, in pure Python, one feature at a time.

The workflows are our own (tests/workflows/*.json); the node definitions are a trimmed
`/object_info` captured from the test server (tests/workflows/_object_info.json), kept
honest by the comfy-marked test at the end that compares it with a live server. The same
workflows are compared with the browser's own graphToPrompt in
tests/browser/test_convert_matches_frontend.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from parallel_runs_node.parallel_runs.convert.text import format_date, process_dynamic_prompt
from parallel_runs_node.parallel_runs.convert.to_prompt import ConversionError, workflow_to_prompt
from parallel_runs_node.parallel_runs.convert.widgets import node_layout

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


class Fixed:
    """A random source that always picks the same option (index = int(value * n))."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.fixture(scope="module")
def object_info() -> dict[str, Any]:
    return json.loads((WORKFLOWS / "_object_info.json").read_text())


def load(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / name).read_text())


def convert(name: str, object_info: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return workflow_to_prompt(load(name), object_info, rng=Fixed(0.0), **kwargs)


def test_widget_values_map_to_input_names_skipping_control_after_generate(object_info):
    prompt = convert("widgets_and_links.json", object_info)
    # KSampler: seed, control_after_generate (not sent), steps, cfg, sampler, scheduler, denoise
    assert prompt["5"] == {
        "inputs": {
            "seed": 123456789,
            "steps": 12,
            "cfg": 6.5,
            "sampler_name": "euler",
            "scheduler": "karras",
            "denoise": 0.75,
        },
        "class_type": "KSampler",
        "_meta": {"title": "KSampler"},
    }
    # RandomNoise's noise_seed is seed-like too: its "fixed" control value is not an input.
    assert prompt["6"]["inputs"] == {"noise_seed": 42}
    assert prompt["1"]["inputs"] == {"width": 64, "height": 32, "batch_size": 1, "color": 255}


def test_links_become_node_id_and_output_slot_pairs(object_info):
    prompt = convert("widgets_and_links.json", object_info)
    assert prompt["2"]["inputs"] == {"image": ["1", 0]}
    assert prompt["3"]["inputs"]["image"] == ["2", 0]
    assert prompt["4"]["inputs"]["images"] == ["3", 0]


def test_meta_title_is_the_custom_title_or_display_name_plus_pack_identity(object_info):
    prompt = convert("widgets_and_links.json", object_info)
    assert prompt["1"]["_meta"] == {"title": "Canvas", "cnr_id": "comfy-core", "ver": "0.3.75"}
    assert prompt["2"]["_meta"] == {"title": "Invert Image"}
    legacy = convert("widgets_and_links.json", object_info, pack_meta=False)
    assert legacy["1"]["_meta"] == {"title": "Canvas"}


def test_save_node_filename_patterns_use_other_widgets_and_dates(object_info):
    prompt = convert("widgets_and_links.json", object_info)
    # %Canvas.width% finds node 1 by its "Node name for S&R"; EmptyImage names nobody here.
    assert prompt["4"]["inputs"]["filename_prefix"] == "runs/64x%EmptyImage.height%_bilinear"
    workflow = load("widgets_and_links.json")
    workflow["nodes"][3]["widgets_values"] = ["%date:yyyy-MM-dd_hh%/%Canvas.height%"]
    when = dt.datetime(2026, 3, 7, 9, 5, 1)
    prompt = workflow_to_prompt(workflow, object_info, now=when)
    assert prompt["4"]["inputs"]["filename_prefix"] == "2026-03-07_09/32"


def test_widget_converted_to_input_takes_the_primitive_value(object_info):
    prompt = convert("widget_inputs_and_primitives.json", object_info)
    # One PrimitiveNode drives two widget inputs; the primitive itself is not in the prompt.
    assert prompt["2"]["inputs"]["width"] == 80
    assert prompt["3"]["inputs"]["width"] == 80
    assert prompt["5"]["inputs"]["filename_prefix"] == "from-primitive"
    assert {entry["class_type"] for entry in prompt.values()}.isdisjoint({"PrimitiveNode"})
    assert set(prompt) == {"2", "3", "5", "6", "7", "8"}


def test_widget_input_linked_to_a_real_node_is_a_link(object_info):
    workflow = load("widget_inputs_and_primitives.json")
    # Re-point EmptyImage.width at SolidMask's output (any typed output does for conversion).
    workflow["links"][0] = [1, 6, 0, 2, 0, "INT"]
    prompt = workflow_to_prompt(workflow, object_info)
    assert prompt["2"]["inputs"]["width"] == ["6", 0]
    assert prompt["3"]["inputs"]["width"] == 80  # still fed by the primitive


def test_reroutes_are_followed_and_notes_left_out(object_info):
    prompt = convert("reroutes_and_notes.json", object_info)
    assert prompt["4"]["inputs"] == {"image": ["1", 0]}
    assert prompt["6"]["inputs"] == {"images": ["1", 0]}
    assert set(prompt) == {"1", "4", "5", "6"}


def test_muted_nodes_are_dropped_with_their_links_and_bypassed_ones_pass_through(object_info):
    prompt = convert("muted_and_bypassed.json", object_info)
    assert set(prompt) == {"1", "4", "6"}
    # Two bypassed nodes in a row hand the IMAGE input straight through.
    assert prompt["4"]["inputs"] == {"images": ["1", 0]}
    # The muted node produces nothing: the link into PreviewImage 6 disappears.
    assert prompt["6"]["inputs"] == {}


def test_bypassed_node_without_an_input_of_the_wanted_type_passes_nothing(object_info):
    workflow = load("widget_inputs_and_primitives.json")
    nodes = {n["id"]: n for n in workflow["nodes"]}
    # ImageScaleBy (IMAGE in, IMAGE out) is fed by EmptyImage 8; bypassing it hands that on.
    nodes[7]["mode"] = 4
    workflow["nodes"].append(
        {
            "id": 9,
            "type": "PreviewImage",
            "mode": 0,
            "properties": {},
            "inputs": [{"name": "images", "type": "IMAGE", "link": 9}],
        }
    )
    workflow["links"].append([9, 7, 0, 9, 0, "IMAGE"])
    assert workflow_to_prompt(workflow, object_info)["9"]["inputs"] == {"images": ["8", 0]}
    # SolidMask has no IMAGE (nor any) input: bypassed, its output resolves to nothing.
    nodes[6]["mode"] = 4
    workflow["links"].append([10, 6, 0, 9, 0, "IMAGE"])
    workflow["nodes"][-1]["inputs"][0]["link"] = 10
    assert workflow_to_prompt(workflow, object_info)["9"]["inputs"] == {}


def test_subgraphs_flatten_to_path_ids_with_promoted_widgets(object_info):
    prompt = convert("subgraphs.json", object_info)
    # Inner ids 1 and 2 collide with root nodes, so the frontend renumbers them from
    # last_node_id (5): outer definition -> 6, 7; nested definition -> 8, 9.
    assert set(prompt) == {"1", "3", "5", "2:6", "2:7:8", "2:7:9", "4:6", "4:7:8", "4:7:9"}
    assert prompt["2:6"]["inputs"] == {"blur_radius": 7, "sigma": 1.5, "image": ["1", 0]}
    # The second instance stores no value for the promoted widget: the inner one applies.
    assert prompt["4:6"]["inputs"]["blur_radius"] == 3
    assert prompt["2:7:8"]["inputs"] == {"image": ["2:6", 0]}
    assert prompt["2:7:9"]["inputs"] == {"image": ["2:7:8", 0]}
    assert prompt["3"]["inputs"] == {"images": ["2:7:9", 0]}
    assert prompt["2:6"]["_meta"] == {"title": "Blur"}


def test_subgraph_input_linked_from_outside_overrides_the_promoted_widget(object_info):
    workflow = load("subgraphs.json")
    workflow["nodes"].append(
        {
            "id": 6,
            "type": "SolidMask",
            "mode": 0,
            "inputs": [],
            "outputs": [{"name": "MASK", "type": "MASK", "links": [5]}],
            "widgets_values": [1.0, 4, 4],
            "properties": {},
        }
    )
    workflow["nodes"][1]["inputs"][1]["link"] = 5
    workflow["links"].append([5, 6, 0, 2, 1, "INT"])
    workflow["last_node_id"] = 6
    prompt = workflow_to_prompt(workflow, object_info)
    # Node 6 now exists at the root, so the renumbering starts one higher.
    assert prompt["2:7"]["inputs"]["blur_radius"] == ["6", 0]
    assert prompt["4:7"]["inputs"]["blur_radius"] == 3


def test_muted_subgraph_instance_leaves_out_its_contents(object_info):
    workflow = load("subgraphs.json")
    workflow["nodes"][1]["mode"] = 2
    prompt = workflow_to_prompt(workflow, object_info)
    assert not [key for key in prompt if key.startswith("2:")]
    assert prompt["3"]["inputs"] == {}
    workflow["nodes"][1]["mode"] = 4
    prompt = workflow_to_prompt(workflow, object_info)
    assert prompt["3"]["inputs"] == {"images": ["1", 0]}


def test_dynamic_prompts_choose_options_and_strip_comments(object_info):
    prompt = convert("dynamic_prompts.json", object_info)
    # Like the frontend, "//" starts a comment even inside a URL.
    assert prompt["1"]["inputs"]["text"] == "a red cat \nhttp:"
    assert prompt["2"]["inputs"]["text"] == "plain text"
    last = workflow_to_prompt(load("dynamic_prompts.json"), object_info, rng=Fixed(0.99))
    assert last["1"]["inputs"]["text"].startswith("a green dog ")


def test_dynamic_prompt_parser_handles_nesting_and_escapes():
    assert process_dynamic_prompt("{a|{b|c}}", Fixed(0.9)) == "c"
    assert process_dynamic_prompt("x \\{y\\} /* no */z", Fixed(0.0)) == "x \\{y\\} z"
    seen = {process_dynamic_prompt("{1|2|3}", random.Random(seed)) for seed in range(40)}
    assert seen == {"1", "2", "3"}
    assert format_date("yy-M-d h:mm:ss", dt.datetime(2031, 1, 2, 3, 4, 5)) == "31-1-2 3:04:05"


def test_array_widget_values_are_boxed(object_info):
    workflow = load("widgets_and_links.json")
    workflow["nodes"][0]["widgets_values"] = [[1, 2], 32, 1, 0]
    prompt = workflow_to_prompt(workflow, object_info)
    assert prompt["1"]["inputs"]["width"] == {"__value__": [1, 2]}


def test_missing_widget_values_fall_back_to_node_defaults(object_info):
    workflow = load("widgets_and_links.json")
    del workflow["nodes"][0]["widgets_values"]
    workflow["nodes"][4]["widgets_values"] = [7]
    prompt = workflow_to_prompt(workflow, object_info)
    defaults = object_info["EmptyImage"]["input"]["required"]
    assert prompt["1"]["inputs"]["width"] == defaults["width"][1]["default"]
    assert prompt["5"]["inputs"]["seed"] == 7
    assert prompt["5"]["inputs"]["sampler_name"] == "euler"  # first option of the combo


def test_upload_button_takes_a_slot_but_is_not_sent(object_info):
    layout = node_layout("LoadImage", object_info["LoadImage"])
    assert [(w.name, w.persisted, w.in_prompt) for w in layout.widgets] == [
        ("image", True, True),
        ("upload", True, False),
    ]
    workflow = {
        "nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "widgets_values": ["cat.png", "image"]}
        ],
        "links": [],
    }
    assert workflow_to_prompt(workflow, object_info)["1"]["inputs"] == {"image": "cat.png"}


def test_unknown_node_type_names_the_node(object_info):
    workflow = load("widgets_and_links.json")
    workflow["nodes"][1]["type"] = "NoSuchNode"
    with pytest.raises(ConversionError) as caught:
        workflow_to_prompt(workflow, object_info)
    assert caught.value.node_id == "2"
    assert caught.value.node_type == "NoSuchNode"
    assert "not known to the server" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_unknown_node_type_is_fine_while_muted(object_info):
    workflow = load("widgets_and_links.json")
    workflow["nodes"][5]["type"] = "NoSuchNode"
    workflow["nodes"][5]["mode"] = 2
    assert "6" not in workflow_to_prompt(workflow, object_info)


def test_link_from_a_missing_node_names_the_node(object_info):
    workflow = load("widgets_and_links.json")
    workflow["links"][1] = [2, 99, 0, 3, 0, "IMAGE"]
    with pytest.raises(ConversionError) as caught:
        workflow_to_prompt(workflow, object_info)
    assert caught.value.node_id == "3"
    assert caught.value.node_type == "ImageScale"
    assert "99" in caught.value.message


def test_inner_node_of_unknown_type_names_its_path(object_info):
    workflow = load("subgraphs.json")
    workflow["definitions"]["subgraphs"][1]["nodes"][0]["type"] = "Gone"
    with pytest.raises(ConversionError) as caught:
        workflow_to_prompt(workflow, object_info)
    assert caught.value.node_id == "2:7:8"
    assert caught.value.node_type == "Gone"


def test_reroute_cycle_is_an_error_not_a_hang(object_info):
    workflow = load("reroutes_and_notes.json")
    workflow["links"][0] = [1, 3, 0, 2, 0, "*"]  # reroute 2 <- reroute 3 <- reroute 2
    with pytest.raises(ConversionError, match="circular"):
        workflow_to_prompt(workflow, object_info)


@pytest.mark.parametrize("bad", [{}, {"nodes": "x"}, [], {"1": {"class_type": "X", "inputs": {}}}])
def test_not_a_ui_workflow(object_info, bad):
    with pytest.raises(ConversionError, match="UI-format"):
        workflow_to_prompt(bad, object_info)


def test_the_input_workflow_is_not_modified(object_info):
    for path in sorted(WORKFLOWS.glob("[!_]*.json")):
        workflow = json.loads(path.read_text())
        before = copy.deepcopy(workflow)
        workflow_to_prompt(workflow, object_info)
        assert workflow == before, path.name


def layout_summary(node_type: str, node_def: dict[str, Any]) -> list[Any]:
    """What the converter reads from a definition, minus combo defaults (file lists)."""
    layout = node_layout(node_type, node_def)
    widgets = [
        (w.name, w.kind, w.persisted, w.in_prompt, None if w.kind == "COMBO" else w.default)
        for w in layout.widgets
    ]
    return [list(layout.inputs), widgets, list(layout.output_types)]


@pytest.mark.comfy
def test_trimmed_object_info_matches_the_live_server(comfy_server, object_info):
    with urllib.request.urlopen(f"{comfy_server.url}/object_info", timeout=30) as response:
        live = json.load(response)
    for node_type, node_def in object_info.items():
        assert node_type in live, node_type
        assert layout_summary(node_type, live[node_type]) == layout_summary(node_type, node_def)
