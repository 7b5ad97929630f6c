"""A UI-format workflow as a graph the converter can walk: nodes with their slots, links,
subgraph definitions, and link resolution through reroutes, bypassed nodes and subgraph
boundaries.

Mirrors ComfyUI_frontend's `ExecutableNodeDTO` (resolveInput / resolveOutput), so a link
ends where the frontend's `graphToPrompt` would end it. Node ids inside subgraphs are
execution ids joined with ":" (`"<instance>:<inner>"`), as the frontend writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .subgraph_ids import SUBGRAPH_INPUT_ID, SUBGRAPH_OUTPUT_ID, normalize_definitions
from .widgets import SAVE_NODE_TYPES, NodeLayout, node_layout, restore_values

MODE_NEVER = 2
MODE_BYPASS = 4
__all__ = [
    "MODE_BYPASS",
    "MODE_NEVER",
    "SUBGRAPH_INPUT_ID",
    "SUBGRAPH_OUTPUT_ID",
    "VIRTUAL_TYPES",
    "Graph",
    "GraphBuilder",
    "GraphError",
    "Link",
    "Node",
    "Slot",
    "is_valid_connection",
]
# Frontend-only node types (registered by core extensions, never sent to the server).
VIRTUAL_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


class GraphError(ValueError):
    """A problem with one node; the converter turns it into a ConversionError."""

    def __init__(self, node_id: str, node_type: str | None, message: str) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.node_type = node_type
        self.message = message


@dataclass(frozen=True)
class Link:
    id: Any
    origin_id: Any
    origin_slot: int
    target_id: Any
    target_slot: int
    type: Any


@dataclass
class Slot:
    name: str
    type: Any
    link: Any = None  # link id or None
    is_widget: bool = False


@dataclass
class Node:
    """One node of one graph (root or subgraph definition), as the frontend configures it."""

    id: Any
    type: str
    mode: int
    title: str
    properties: dict[str, Any]
    inputs: list[Slot]
    outputs: list[Any]  # output types
    raw: dict[str, Any]
    layout: NodeLayout | None = None
    values: list[Any] = field(default_factory=list)  # aligned with layout.widgets
    subgraph: Graph | None = None  # set for subgraph instances
    promoted: dict[int, tuple[bool, Any]] = field(default_factory=dict)

    @property
    def is_virtual(self) -> bool:
        return self.subgraph is not None or self.layout is None

    def widget_value(self, name: str) -> tuple[bool, Any]:
        if self.layout is None:
            return False, None
        for widget, value in zip(self.layout.widgets, self.values, strict=True):
            if widget.name == name:
                return True, value
        return False, None

    def set_widget(self, name: str, value: Any) -> bool:
        if self.layout is None:
            return False
        for index, widget in enumerate(self.layout.widgets):
            if widget.name == name:
                self.values[index] = value
                return True
        return False

    @property
    def search_name(self) -> str | None:
        value = self.properties.get("Node name for S&R")
        return value if isinstance(value, str) else None


@dataclass
class Graph:
    """The root graph or one subgraph definition (shared by all its instances)."""

    id: str
    nodes: dict[str, Node]
    links: dict[Any, Link]
    definition: Mapping[str, Any] | None = None  # subgraph definition (inputs/outputs)

    def node(self, node_id: Any) -> Node | None:
        return self.nodes.get(str(node_id))


def parse_link(raw: Any) -> Link | None:
    """Root links are arrays, subgraph (and schema 1) links are objects."""
    if isinstance(raw, Mapping):
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot", "type")
        return Link(*(raw.get(k) for k in keys))
    if isinstance(raw, (list, tuple)) and len(raw) >= 5:
        return Link(*raw[:5], raw[5] if len(raw) > 5 else None)
    return None


def default_title(node_type: str, object_info: Mapping[str, Any], subgraph: Any) -> str:
    if subgraph is not None:
        return str(subgraph.get("name") or node_type)
    node_def = object_info.get(node_type)
    if isinstance(node_def, Mapping):
        return str(node_def.get("display_name") or node_def.get("name") or node_type)
    return {"PrimitiveNode": "Primitive"}.get(node_type, node_type)


class GraphBuilder:
    """Builds `Graph`s from workflow JSON against one object_info; layouts are cached."""

    def __init__(self, object_info: Mapping[str, Any], workflow: Mapping[str, Any]) -> None:
        self.object_info = object_info
        self.layouts: dict[str, NodeLayout] = {}
        self.definitions = {str(d.get("id")): d for d in normalize_definitions(workflow)}
        self.graphs: dict[str, Graph] = {}

    def layout(self, node_type: str) -> NodeLayout | None:
        if node_type not in self.layouts:
            node_def = self.object_info.get(node_type)
            if not isinstance(node_def, Mapping):
                return None
            self.layouts[node_type] = node_layout(node_type, node_def)
        return self.layouts[node_type]

    def build(self, graph_id: str, data: Mapping[str, Any], definition: Any = None) -> Graph:
        links = {}
        for raw in data.get("links") or ():
            link = parse_link(raw)
            if link is not None:
                links[link.id] = link
        graph = Graph(graph_id, {}, links, definition)
        self.graphs[graph_id] = graph
        for raw in data.get("nodes") or ():
            node = self.make_node(raw)
            graph.nodes[str(node.id)] = node
        return graph

    def subgraph(self, subgraph_id: str) -> Graph:
        if subgraph_id not in self.graphs:
            definition = self.definitions[subgraph_id]
            self.build(subgraph_id, definition, definition)
        return self.graphs[subgraph_id]

    def make_node(self, raw: Mapping[str, Any]) -> Node:
        node_type = str(raw.get("type"))
        node_id = raw.get("id")
        definition = self.definitions.get(node_type)
        title = raw.get("title")
        node = Node(
            id=node_id,
            type=node_type,
            mode=int(raw.get("mode") or 0),
            title=title
            if isinstance(title, str)
            else default_title(node_type, self.object_info, definition),
            properties=dict(raw.get("properties") or {}),
            inputs=[],
            outputs=[],
            raw=dict(raw),
        )
        saved_inputs = [i for i in raw.get("inputs") or () if isinstance(i, Mapping)]
        saved_outputs = [o for o in raw.get("outputs") or () if isinstance(o, Mapping)]
        if definition is not None:
            node.subgraph = self.subgraph(node_type)
            node.inputs = subgraph_slots(definition.get("inputs") or (), saved_inputs)
            node.outputs = [o.get("type") for o in definition.get("outputs") or ()]
            return node
        layout = self.layout(node_type)
        if layout is None:
            node.inputs = [
                Slot(str(i.get("name", "")), i.get("type"), i.get("link")) for i in saved_inputs
            ]
            node.outputs = [o.get("type") for o in saved_outputs]
            if node_type == "Reroute" and not node.inputs:
                node.inputs = [Slot("", "*")]
            return node
        node.layout = layout
        if node_type not in SAVE_NODE_TYPES:
            node.properties.setdefault("Node name for S&R", node_type)
        node.inputs = configured_slots(layout, saved_inputs)
        node.outputs = list(layout.output_types) + [
            o.get("type") for o in saved_outputs[len(layout.output_types) :]
        ]
        node.values = restore_values(layout, raw.get("widgets_values"))
        return node


def configured_slots(layout: NodeLayout, saved: list[Mapping[str, Any]]) -> list[Slot]:
    """The node definition's slots (sockets, then widget inputs) carrying the saved links,
    followed by extra inputs that only the saved node has (ComfyNode.configure)."""
    by_name = {str(i.get("name")): i for i in saved}
    slots = [
        Slot(name, type_, (by_name.get(name) or {}).get("link"), is_widget)
        for name, type_, is_widget in layout.inputs
    ]
    known = {name for name, _, _ in layout.inputs}
    slots += [
        Slot(str(i.get("name")), i.get("type"), i.get("link"), "widget" in i)
        for i in saved
        if str(i.get("name")) not in known
    ]
    return slots


def subgraph_slots(definition_inputs: Any, saved: list[Mapping[str, Any]]) -> list[Slot]:
    """A subgraph instance has the definition's inputs; saved links are matched by name."""
    by_name = {str(i.get("name")): i for i in saved}
    slots = []
    for index, spec in enumerate(definition_inputs):
        name = str(spec.get("name"))
        saved_input = by_name.get(name) or (saved[index] if index < len(saved) else {})
        if saved_input.get("name", name) != name:
            saved_input = {}
        slots.append(Slot(name, spec.get("type"), saved_input.get("link")))
    return slots


def is_valid_connection(type_a: Any, type_b: Any) -> bool:
    """LiteGraph's type check: wildcards, case-insensitive, comma-separated alternatives."""
    a = 0 if type_a in ("", "*") else type_a
    b = 0 if type_b in ("", "*") else type_b
    if not a or not b or a == b:
        return True
    a_text, b_text = str(a).lower(), str(b).lower()
    if "," not in a_text and "," not in b_text:
        return a_text == b_text
    return any(is_valid_connection(x, y) for x in a_text.split(",") for y in b_text.split(","))
