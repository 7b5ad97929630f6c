"""Flatten subgraph instances into execution nodes and resolve where each input's value
comes from: another node's output, a promoted widget value, or nowhere.

One `ExecNode` per node per subgraph path, like the frontend's `ExecutableNodeDTO`:
muted nodes produce nothing, bypassed nodes pass the first type-compatible input through,
virtual nodes (Reroute) forward their own input, subgraph boundaries are crossed both ways.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .graph import (
    MODE_BYPASS,
    MODE_NEVER,
    SUBGRAPH_INPUT_ID,
    Graph,
    GraphError,
    Node,
    is_valid_connection,
)


@dataclass(frozen=True)
class Resolved:
    """Where an input's value comes from: a node output, or a boxed widget value."""

    origin_id: str
    origin_slot: int
    widget: tuple[Any] | None = None


@dataclass
class ExecNode:
    node: Node
    graph: Graph
    path: tuple[str, ...]  # execution ids of the enclosing subgraph instances
    instance: ExecNode | None  # the subgraph instance this node sits in
    registry: dict[str, ExecNode]

    @property
    def id(self) -> str:
        return ":".join((*self.path, str(self.node.id)))

    def fail(self, message: str) -> GraphError:
        return GraphError(self.id, self.node.type, message)

    def resolve_input(
        self, slot: int, visited: set[str] | None = None, type_: Any = None
    ) -> Resolved | None:
        visited = set() if visited is None else visited
        key = f"{self.graph.id}:{self.node.id}[I]{slot}"
        if key in visited:
            raise self.fail(f"circular link through input {slot} of node {self.id}")
        visited.add(key)
        if not 0 <= slot < len(self.node.inputs):
            raise self.fail(f"node {self.id} has no input slot {slot}")
        entry = self.node.inputs[slot]
        link = self.graph.links.get(entry.link) if entry.link is not None else None
        if link is None:
            return None
        if self.instance is not None and link.origin_id == SUBGRAPH_INPUT_ID:
            return self.instance.resolve_boundary_input(link.origin_slot, visited)
        origin = self.graph.node(link.origin_id)
        if origin is None:
            raise self.fail(
                f"input {entry.name!r} of node {self.id} is linked (link {link.id}) "
                f"to node {link.origin_id}, which does not exist"
            )
        origin_exec = self.registry.get(":".join((*self.path, str(origin.id))))
        if origin_exec is None:
            raise self.fail(f"no execution node for {origin.id} (linked into {self.id})")
        slot_type = type_ if type_ is not None else entry.type
        return origin_exec.resolve_output(int(link.origin_slot), slot_type, visited)

    def resolve_boundary_input(self, slot: int, visited: set[str]) -> Resolved | None:
        """An inner link from the subgraph's input node: follow this instance's input out,
        or use the widget value the instance promotes for it."""
        if not 0 <= slot < len(self.node.inputs):
            raise self.fail(f"subgraph instance {self.id} has no input slot {slot}")
        if self.node.inputs[slot].link is not None and self.node.inputs[slot].link in (
            self.graph.links
        ):
            return self.resolve_input(slot, visited)
        promoted = self.node.promoted.get(slot)
        if promoted is None:
            return None
        return Resolved(self.id, -1, (promoted[1],))

    def resolve_output(self, slot: int, type_: Any, visited: set[str]) -> Resolved | None:
        key = f"{self.graph.id}:{self.node.id}[O]{slot}"
        if key in visited:
            raise self.fail(f"circular link through output {slot} of node {self.id}")
        visited.add(key)
        if self.node.mode == MODE_NEVER:
            return None
        if self.node.mode == MODE_BYPASS:
            index = self.bypass_slot(slot, type_)
            return None if index == -1 else self.resolve_input(index, visited)
        if self.node.subgraph is not None:
            return self.resolve_subgraph_output(slot, type_, visited)
        if self.node.is_virtual:
            if slot < len(self.node.inputs) and self.node.inputs[slot].link is not None:
                return self.resolve_input(slot, visited, type_)
            return None
        return Resolved(self.id, slot)

    def bypass_slot(self, slot: int, type_: Any) -> int:
        """The input a bypassed node hands through for output `slot` (_getBypassSlotIndex)."""
        inputs = self.node.inputs
        if type_ in ("*", ""):
            return slot if len(inputs) > slot else 0
        if slot >= len(self.node.outputs):
            raise self.fail(f"bypassed node {self.id} has no output slot {slot}")
        output_type = self.node.outputs[slot]
        if slot < len(inputs):
            opposite = inputs[slot].type
            if is_valid_connection(opposite, output_type) and is_valid_connection(opposite, type_):
                return slot
        for index, entry in enumerate(inputs):
            if entry.type == type_:
                return index
        for index, entry in enumerate(inputs):
            if is_valid_connection(entry.type, output_type) and is_valid_connection(
                entry.type, type_
            ):
                return index
        return -1

    def resolve_subgraph_output(self, slot: int, type_: Any, visited: set[str]) -> Resolved | None:
        subgraph = self.node.subgraph
        assert subgraph is not None and subgraph.definition is not None
        outputs = subgraph.definition.get("outputs") or []
        if not 0 <= slot < len(outputs):
            raise self.fail(f"subgraph instance {self.id} has no output slot {slot}")
        link = None
        for link_id in outputs[slot].get("linkIds") or ():
            link = subgraph.links.get(link_id)
            if link is not None:
                break
        if link is None:
            return None
        if link.origin_id == SUBGRAPH_INPUT_ID:
            raise self.fail(f"subgraph output {slot} of {self.id} is wired straight to an input")
        inner = self.registry.get(":".join((*self.path, str(self.node.id), str(link.origin_id))))
        if inner is None:
            raise self.fail(f"subgraph {self.id} has no inner node {link.origin_id}")
        return inner.resolve_output(int(link.origin_slot), type_, visited)


def flatten(root: Graph) -> dict[str, ExecNode]:
    """Execution nodes by id, root nodes first; inner nodes of a muted or bypassed
    top-level subgraph instance are left out (its inner subgraphs are not checked)."""
    registry: dict[str, ExecNode] = {}
    for node in root.nodes.values():
        exec_node = ExecNode(node, root, (), None, registry)
        registry[exec_node.id] = exec_node
        if node.mode in (MODE_NEVER, MODE_BYPASS) or node.subgraph is None:
            continue
        add_inner(exec_node, registry, set())
    return registry


def add_inner(instance: ExecNode, registry: dict[str, ExecNode], active: set[int]) -> None:
    subgraph = instance.node.subgraph
    assert subgraph is not None
    if id(subgraph) in active:
        raise instance.fail(f"subgraph {instance.node.type} contains itself")
    active = active | {id(subgraph)}
    registry[instance.id] = instance
    path = (*instance.path, str(instance.node.id))
    for node in subgraph.nodes.values():
        inner = ExecNode(node, subgraph, path, instance, registry)
        registry[inner.id] = inner
        if node.subgraph is not None:
            add_inner(inner, registry, active)
