"""Convert a UI-format ComfyUI workflow (what the editor saves) into an API prompt (what
`POST /prompt` takes), in pure Python, from the server's `/object_info`.

The result equals the frontend's own `app.graphToPrompt().output` (checked on the
workflow-templates corpus by tests/browser/test_convert_matches_frontend.py): widget values
mapped to input names by the node definitions, links resolved through reroutes, primitive
nodes, bypassed and muted nodes and subgraphs, `_meta.title` as the frontend writes it.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .graph import (
    MODE_BYPASS,
    MODE_NEVER,
    VIRTUAL_TYPES,
    Graph,
    GraphBuilder,
    GraphError,
    Node,
)
from .resolve import flatten
from .text import RandomSource, apply_text_replacements, process_dynamic_prompt
from .widgets import SAVE_NODE_TYPES, WIDGET_TYPES

__all__ = ["ConversionError", "workflow_to_prompt"]

_REPLACE_PROPERTY = "Run widget replace on values"
_REPO_ID = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?$")
_GITHUB_USER = re.compile(r"^(?!-)(?!.*--)[a-zA-Z0-9-]+(?<!-)$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([\da-z-]+(?:\.[\da-z-]+)*))?"
    r"(?:\+([\da-z-]+(?:\.[\da-z-]+)*))?$"
)
_GIT_HASH = re.compile(r"^[0-9a-f]{4,40}$", re.IGNORECASE)


class ConversionError(ValueError):
    """A workflow node that cannot be converted; says which node and why."""

    def __init__(self, node_id: str | None, node_type: str | None, message: str) -> None:
        where = f"node {node_id}" + (f" ({node_type})" if node_type else "")
        super().__init__(f"{where}: {message}" if node_id is not None else message)
        self.node_id = node_id
        self.node_type = node_type
        self.message = message


def workflow_to_prompt(
    workflow: dict,
    object_info: dict,
    *,
    rng: RandomSource | None = None,
    now: dt.datetime | None = None,
    pack_meta: bool = True,
) -> dict:
    """The API prompt for `workflow`, as `{node_id: {inputs, class_type, _meta}}`.

    `rng` drives dynamic-prompt choices (`{a|b}`), `now` the `%date:...%` patterns of
    save nodes; `pack_meta=False` leaves `cnr_id`/`aux_id`/`ver` out of `_meta` as
    frontends before 1.33 do. Raises ConversionError for what cannot be converted.
    """
    if not isinstance(workflow, Mapping) or not isinstance(workflow.get("nodes"), list):
        raise ConversionError(
            None, None, "not a UI-format workflow: no 'nodes' list (an API prompt already?)"
        )
    try:
        return _convert(workflow, object_info, rng or random.Random(), now, pack_meta)
    except GraphError as error:
        raise ConversionError(error.node_id, error.node_type, error.message) from None
    except (KeyError, TypeError, AttributeError) as error:
        raise ConversionError(None, None, f"malformed workflow: {error!r}") from error


def _convert(
    workflow: Mapping[str, Any],
    object_info: Mapping[str, Any],
    rng: RandomSource,
    now: dt.datetime | None,
    pack_meta: bool,
) -> dict:
    builder = GraphBuilder(object_info, workflow)
    root = builder.build("root", workflow)
    graphs = list(builder.graphs.values())
    for graph in graphs:
        for node in graph.nodes.values():
            if node.subgraph is not None:
                promote_widgets(node)
    for graph in graphs:
        apply_primitives(graph, root, now)
    registry = flatten(root)
    output: dict[str, dict[str, Any]] = {}
    for exec_node in registry.values():
        node = exec_node.node
        if node.mode in (MODE_NEVER, MODE_BYPASS) or node.subgraph is not None:
            continue
        if node.layout is None:
            if node.type in VIRTUAL_TYPES:
                continue
            raise GraphError(
                exec_node.id, node.type, f"node type {node.type!r} is not known to the server"
            )
        inputs = widget_inputs(node, root, rng, now)
        for index, slot in enumerate(node.inputs):
            resolved = exec_node.resolve_input(index)
            if resolved is None:
                continue
            if resolved.widget is not None:
                inputs[slot.name] = box(resolved.widget[0])
            else:
                inputs[slot.name] = [resolved.origin_id, resolved.origin_slot]
        output[exec_node.id] = {
            "inputs": inputs,
            "class_type": node.type,
            "_meta": meta(node, pack_meta),
        }
    for entry in output.values():
        for name, value in list(entry["inputs"].items()):
            if isinstance(value, list) and len(value) == 2 and value[0] not in output:
                del entry["inputs"][name]
    return output


def box(value: Any) -> Any:
    """Arrays mean links in a prompt, so array values travel as {"__value__": [...]}."""
    return {"__value__": value} if isinstance(value, list) else value


def widget_inputs(
    node: Node, root: Graph, rng: RandomSource, now: dt.datetime | None
) -> dict[str, Any]:
    """Every prompt-bound widget's value, rewritten the way the frontend serializes it."""
    assert node.layout is not None
    inputs: dict[str, Any] = {}
    for widget, value in zip(node.layout.widgets, node.values, strict=True):
        if not widget.in_prompt or not widget.name:
            continue
        if widget.dynamic_prompts and isinstance(value, str):
            value = process_dynamic_prompt(value, rng)
        elif (
            widget.name == "filename_prefix"
            and node.type in SAVE_NODE_TYPES
            and isinstance(value, str)
        ):
            value = replace_text(value, root, now)
        if widget.kind == "CURVE" and value is not None:
            inputs[widget.name] = {"__type__": "CURVE", "__value__": value}
        else:
            inputs[widget.name] = box(value)
    return inputs


def replace_text(value: str, root: Graph, now: dt.datetime | None) -> str:
    return apply_text_replacements(value, lambda: all_nodes(root), lambda: now or dt.datetime.now())


def all_nodes(graph: Graph) -> Iterator[Node]:
    """Every node, subgraph contents before their instance (graphTraversalUtil.mapAllNodes)."""
    for node in graph.nodes.values():
        if node.subgraph is not None:
            yield from all_nodes(node.subgraph)
        yield node


def meta(node: Node, pack_meta: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"title": node.title}
    if not pack_meta:
        return result
    props = node.properties
    cnr_id = props.get("cnr_id")
    if isinstance(cnr_id, str) and valid_repo_id(cnr_id):
        result["cnr_id"] = cnr_id
    aux_id = props.get("aux_id")
    if isinstance(aux_id, str) and valid_aux_id(aux_id):
        result["aux_id"] = aux_id
    ver = props.get("ver")
    if isinstance(ver, str):
        stripped = ver[1:] if ver.startswith("v") else ver
        if ver == "unknown":
            result["ver"] = ver
        elif _SEMVER.match(stripped) or _GIT_HASH.match(stripped):
            result["ver"] = stripped
    return result


def valid_repo_id(value: str) -> bool:
    return (
        1 <= len(value) <= 100
        and bool(_REPO_ID.match(value))
        and not re.search(r"^[_\-.]|[_\-.]$", value)
    )


def valid_aux_id(value: str) -> bool:
    parts = value.split("/")
    if len(parts) != 2 or not all(parts):
        return False
    user, repo = parts
    return 1 <= len(user) <= 39 and bool(_GITHUB_USER.match(user)) and valid_repo_id(repo)


def promote_widgets(instance: Node) -> None:
    """Widget values a subgraph instance supplies to unconnected subgraph inputs: its saved
    `widgets_values` in order, else the inner widget's own value (SubgraphNode.configure)."""
    subgraph = instance.subgraph
    assert subgraph is not None and subgraph.definition is not None
    saved = instance.raw.get("widgets_values")
    saved = saved if isinstance(saved, list) else []
    position = 0
    for index, spec in enumerate(subgraph.definition.get("inputs") or ()):
        found, value = promoted_source(subgraph, spec)
        if not found:
            continue
        if position < len(saved):
            value = saved[position]
        instance.promoted[index] = (True, value)
        position += 1


def promoted_source(subgraph: Graph, spec: Mapping[str, Any]) -> tuple[bool, Any]:
    """The first inner widget a subgraph input feeds, and its value."""
    for link_id in spec.get("linkIds") or ():
        link = subgraph.links.get(link_id)
        target = subgraph.node(link.target_id) if link else None
        if link is None or target is None:
            continue
        slot = target_slot(target, link)
        if slot is None:
            continue
        if target.subgraph is not None:
            index = target.inputs.index(slot)
            if index in target.promoted:
                return target.promoted[index]
            if target.subgraph.definition is not None:
                nested = (target.subgraph.definition.get("inputs") or [])[index]
                found, value = promoted_source(target.subgraph, nested)
                if found:
                    return found, value
            continue
        if slot.is_widget:
            return target.widget_value(slot.name)
    return False, None


def target_slot(target: Node, link: Any) -> Any:
    """The configured input a link feeds: by the saved link id, else by slot index."""
    for slot in target.inputs:
        if slot.link == link.id:
            return slot
    saved = [i for i in target.raw.get("inputs") or () if isinstance(i, Mapping)]
    index = link.target_slot
    if isinstance(index, int) and 0 <= index < len(saved):
        name = saved[index].get("name")
        return next((s for s in target.inputs if s.name == name), None)
    return None


def apply_primitives(graph: Graph, root: Graph, now: dt.datetime | None) -> None:
    """A PrimitiveNode's value becomes the value of every widget it is linked to."""
    for node in graph.nodes.values():
        if node.type != "PrimitiveNode":
            continue
        links = [
            link
            for link in graph.links.values()
            if str(link.origin_id) == str(node.id) and link.origin_slot == 0
        ]
        if not links:
            continue
        first = graph.node(links[0].target_id)
        slot = target_slot(first, links[0]) if first else None
        if first is None or slot is None:
            continue
        if not slot.is_widget and slot.type not in WIDGET_TYPES:
            continue
        value = primitive_value(node, first, slot.name)
        if value and node.properties.get(_REPLACE_PROPERTY) and isinstance(value, str):
            value = replace_text(value, root, now)
        for link in links:
            target = graph.node(link.target_id)
            target_input = target_slot(target, link) if target else None
            if target is not None and target_input is not None and target_input.is_widget:
                target.set_widget(target_input.name, value)


def primitive_value(primitive: Node, first_target: Node, widget_name: str) -> Any:
    """The primitive's saved value, else the value of the first widget it feeds."""
    saved = primitive.raw.get("widgets_values")
    if isinstance(saved, list) and saved:
        return saved[0]
    return first_target.widget_value(widget_name)[1]
