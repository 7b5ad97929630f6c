"""Subgraph definitions as the frontend loads them: nested definitions hoisted, duplicates
dropped, and inner node ids that collide with a root node (or an earlier definition)
renumbered from `last_node_id` upwards.

The renumbering changes the execution ids of inner nodes (`"<instance>:<inner>"`), so
the converter has to apply it exactly as ComfyUI_frontend's `normalizeSubgraphDefinitions`
does, or its prompt would name different nodes than the browser's.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# Pseudo node ids of a subgraph's input and output nodes in its links.
SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20


def node_key(node_id: Any) -> str:
    return str(node_id)


def numeric_id(node_id: Any) -> int | None:
    try:
        value = int(str(node_id))
    except ValueError:
        return None
    return value if value >= 0 and str(value) == str(node_id).strip() else None


def hoist(definitions: list[Any]) -> list[dict[str, Any]]:
    """All definitions, nested `definitions.subgraphs` included, first occurrence of an id."""
    result: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(items: list[Any]) -> None:
        for item in items:
            if not isinstance(item, Mapping):
                continue
            definition = dict(item)
            nested = (definition.get("definitions") or {}).get("subgraphs") or []
            if str(definition.get("id")) not in seen:
                seen.add(str(definition.get("id")))
                result.append(definition)
            visit(list(nested))

    visit(definitions)
    return result


def first_by_id(items: Any) -> list[Any]:
    kept, seen = [], set()
    for item in items or ():
        key = node_key(item.get("id")) if isinstance(item, Mapping) else None
        if key in seen:
            continue
        seen.add(key)
        kept.append(item)
    return kept


def link_id(link: Any) -> Any:
    if isinstance(link, Mapping):
        return link.get("id")
    return link[0] if isinstance(link, (list, tuple)) and link else None


def last_node_id(workflow: Mapping[str, Any]) -> int:
    if workflow.get("version") == 0.4:
        value = workflow.get("last_node_id")
    else:
        value = (workflow.get("state") or {}).get("lastNodeId")
    number = numeric_id(value) if value is not None else None
    return number or 0


def normalize_definitions(workflow: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The definitions the frontend ends up with; the input workflow is not modified."""
    raw = list((workflow.get("definitions") or {}).get("subgraphs") or ())
    definitions = copy.deepcopy(hoist(raw))
    used = {node_key(n.get("id")) for n in workflow.get("nodes") or () if isinstance(n, Mapping)}
    used_numbers = {n for n in (numeric_id(k) for k in used) if n is not None}
    last = last_node_id(workflow)
    for definition in definitions:
        nodes = [n for n in first_by_id(definition.get("nodes")) if isinstance(n, Mapping)]
        seen_links: set[Any] = set()
        links = []
        for link in definition.get("links") or ():
            if link_id(link) in seen_links:
                continue
            seen_links.add(link_id(link))
            links.append(link)
        remap: dict[str, int] = {}
        for node in nodes:
            key = node_key(node.get("id"))
            if key in used:
                new = last + 1
                while new in used_numbers:
                    new += 1
                remap[key] = new
                node["id"] = new
                used_numbers.add(new)
                used.add(str(new))
                last = new
                continue
            used.add(key)
            number = numeric_id(node.get("id"))
            if number is not None:
                used_numbers.add(number)
                last = max(last, number)
        definition["nodes"] = nodes
        definition["links"] = [remap_link(link, remap) for link in links] if remap else links
    return definitions


def remap_link(link: Any, remap: Mapping[str, int]) -> Any:
    def mapped(node_id: Any) -> Any:
        if node_id in (SUBGRAPH_INPUT_ID, SUBGRAPH_OUTPUT_ID):
            return node_id
        return remap.get(node_key(node_id), node_id)

    if isinstance(link, Mapping):
        link = dict(link)
        link["origin_id"] = mapped(link.get("origin_id"))
        link["target_id"] = mapped(link.get("target_id"))
        return link
    if isinstance(link, (list, tuple)) and len(link) >= 5:
        link = list(link)
        link[1], link[3] = mapped(link[1]), mapped(link[3])
    return link
