"""Conversion between ComfyUI's API format and the UI (graph-editor) format its web editor opens.

UI format facts: ``nodes`` each have ``id`` (int), ``type`` (class), ``pos``, ``size``, ``inputs`` (sockets:
``{name, type, link}``; a widget fed by a link also has ``widget: {name}``), ``outputs`` (``{name, type, links,
slot_index}``) and ``widgets_values`` (widget values in input order; an input with ``control_after_generate``
such as KSampler's seed is followed by one extra value, e.g. ``"fixed"``). ``links`` are ``[link_id, from_node,
from_slot, to_node, to_slot, type]``, where ``to_slot`` indexes the target's ``inputs`` list.

Both directions need the backend's ``/object_info`` for widget order and slot types. API -> UI -> API gives back
the same graph when node ids are integers and every node has ``_meta.title``; declared inputs missing from the
API graph come back with their defaults, inputs a class does not declare are kept in the node's properties.
UI -> API drops muted nodes and notes, and follows links through Reroute and bypassed nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from comfy_workflows import _ui_layout as layout
from comfy_workflows.graph import ApiGraph
from comfy_workflows.object_info import InputDef, NodeDef, ObjectInfo, as_object_info

UI_VERSION = 0.4
CONTROL_AFTER_GENERATE_VALUE = "fixed"
EXTRA_INPUTS_PROPERTY = "atelier_extra_inputs"
"""Node property holding API inputs the class does not declare, so that they survive a round trip."""

MODE_MUTED = 2
MODE_BYPASSED = 4
_VIRTUAL_CLASSES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
"""Editor-only nodes: they never reach the API graph."""


class UIFormatError(ValueError):
    """A workflow cannot be converted (unknown class, non-integer node id, cycle, dangling link)."""


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def _default(input_def: InputDef) -> Any:
    if "default" in input_def.config:
        return input_def.config["default"]
    if input_def.options:
        return input_def.options[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(input_def.type)


def _node_def(info: ObjectInfo, class_type: str, node_id: object) -> NodeDef:
    node_def = info.node(class_type)
    if node_def is None:
        raise UIFormatError(f"node {node_id}: class {class_type!r} is not known to the backend")
    return node_def


def _int_ids(graph: Mapping[str, Any]) -> dict[str, int]:
    ids = {}
    for node_id in graph:
        if not str(node_id).isdigit():
            raise UIFormatError(f"node id {node_id!r} is not an integer; the editor format needs integer ids")
        ids[node_id] = int(node_id)
    return ids


def api_to_ui(graph: Mapping[str, Any], object_info: ObjectInfo | Mapping[str, Any]) -> dict[str, Any]:
    """The editor (UI-format) workflow for an API-format ``graph``, laid out left to right by depth."""
    info = as_object_info(object_info)
    ids = _int_ids(graph)
    defs = {node_id: _node_def(info, node["class_type"], node_id) for node_id, node in graph.items()}
    deps = {
        ids[n]: [ids[v[0]] for v in node.get("inputs", {}).values() if _is_link(v) and v[0] in ids]
        for n, node in graph.items()
    }
    try:
        order = layout.topological_order(deps)
    except ValueError as exc:
        raise UIFormatError(str(exc)) from exc
    nodes = {ids[n]: _ui_node(ids[n], node, defs[n]) for n, node in graph.items()}
    links = _wire(graph, ids, defs, nodes)
    heights = {node_id: node["size"][1] for node_id, node in nodes.items()}
    pos = layout.positions(order, layout.depths(order, deps), heights)
    for index, node_id in enumerate(order):
        nodes[node_id]["pos"] = pos[node_id]
        nodes[node_id]["order"] = index
    return {
        "last_node_id": max(nodes, default=0),
        "last_link_id": len(links),
        "nodes": [nodes[node_id] for node_id in sorted(nodes)],
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": UI_VERSION,
    }


def _ui_node(node_id: int, api_node: Mapping[str, Any], node_def: NodeDef) -> dict[str, Any]:
    """A UI node without links wired in (socket ``link`` fields are filled by :func:`_wire`)."""
    values = api_node.get("inputs", {})
    sockets: list[dict[str, Any]] = []
    widgets: list[Any] = []
    text_widgets = 0
    for input_def in node_def.inputs:
        present = input_def.name in values
        value = values.get(input_def.name)
        if not input_def.is_widget:
            sockets.append({"name": input_def.name, "type": input_def.type, "link": None})
            continue
        if _is_link(value):
            sockets.append(
                {"name": input_def.name, "type": input_def.type, "link": None, "widget": {"name": input_def.name}}
            )
        widgets.append(value if present and not _is_link(value) else _default(input_def))
        text_widgets += bool(input_def.config.get("multiline"))
        if input_def.has_control_after_generate:
            widgets.append(CONTROL_AFTER_GENERATE_VALUE)
    outputs = [
        {"name": name, "type": type_name, "links": [], "slot_index": index}
        for index, (name, type_name) in enumerate(zip(node_def.output_names, node_def.outputs, strict=False))
    ]
    extra = {k: v for k, v in values.items() if node_def.input(k) is None}
    properties: dict[str, Any] = {"Node name for S&R": node_def.class_type}
    if extra:
        properties[EXTRA_INPUTS_PROPERTY] = extra
    height = layout.node_height(max(len(sockets), len(outputs)), len(widgets), text_widgets)
    return {
        "id": node_id,
        "type": node_def.class_type,
        "title": api_node.get("_meta", {}).get("title") or node_def.display_name,
        "pos": [0, 0],
        "size": [layout.NODE_WIDTH, height],
        "flags": {},
        "order": 0,
        "mode": 0,
        "inputs": sockets,
        "outputs": outputs,
        "properties": properties,
        "widgets_values": widgets,
    }


def _wire(
    graph: Mapping[str, Any], ids: Mapping[str, int], defs: Mapping[str, NodeDef], nodes: dict[int, dict[str, Any]]
) -> list[list[Any]]:
    """Create the links array and fill in the socket and output link fields."""
    links: list[list[Any]] = []
    for api_id in sorted(graph, key=lambda n: ids[n]):
        target = nodes[ids[api_id]]
        for slot_index, socket in enumerate(target["inputs"]):
            value = graph[api_id].get("inputs", {}).get(socket["name"])
            if not _is_link(value):
                continue
            source_id, source_slot = value
            if source_id not in ids or not 0 <= source_slot < len(defs[source_id].outputs):
                raise UIFormatError(f"node {api_id} input {socket['name']!r} links to missing {value!r}")
            link_id = len(links) + 1
            link_type = defs[source_id].outputs[source_slot]
            links.append([link_id, ids[source_id], source_slot, ids[api_id], slot_index, link_type])
            socket["link"] = link_id
            nodes[ids[source_id]]["outputs"][source_slot]["links"].append(link_id)
    return links


class _Sources:
    """Finds the real node output behind a UI link, following Reroute and bypassed nodes."""

    def __init__(self, nodes: Mapping[int, Mapping[str, Any]], links: Mapping[int, tuple[int, int, str]]) -> None:
        self.nodes = nodes
        self.links = links

    def source(self, link_id: int, hops: int = 0) -> tuple[int, int] | None:
        """``(node id, output slot)`` feeding ``link_id``; None where the value comes from a widget (a
        PrimitiveNode), a muted node, or a disconnected Reroute/bypassed node."""
        if link_id not in self.links:
            raise UIFormatError(f"link {link_id} is used by a node but missing from the links array")
        from_node, from_slot, link_type = self.links[link_id]
        node = self.nodes.get(from_node)
        if node is None:
            raise UIFormatError(f"link {link_id} comes from node {from_node}, which does not exist")
        if hops > len(self.nodes):
            raise UIFormatError(f"link {link_id} goes round in a loop of Reroute or bypassed nodes")
        if node.get("type") == "PrimitiveNode" or node.get("mode") == MODE_MUTED:
            return None
        if node.get("type") == "Reroute" or node.get("mode") == MODE_BYPASSED:
            upstream = self._pass_through(node, link_type)
            return None if upstream is None else self.source(upstream, hops + 1)
        return from_node, from_slot

    @staticmethod
    def _pass_through(node: Mapping[str, Any], link_type: str) -> int | None:
        inputs = [s for s in node.get("inputs", []) if s.get("link") is not None]
        if node.get("type") == "Reroute":
            return inputs[0]["link"] if inputs else None
        matching = [s["link"] for s in inputs if s.get("type") in (link_type, "*")]
        return matching[0] if matching else None


def _links_table(raw_links: Any) -> dict[int, tuple[int, int, str]]:
    """``link_id -> (from_node, from_slot, type)`` from either the array or the object link encoding."""
    table: dict[int, tuple[int, int, str]] = {}
    for link in raw_links or []:
        if isinstance(link, Mapping):
            table[int(link["id"])] = (int(link["origin_id"]), int(link["origin_slot"]), str(link.get("type", "*")))
        else:
            table[int(link[0])] = (int(link[1]), int(link[2]), str(link[5]) if len(link) > 5 else "*")
    return table


def ui_to_api(workflow: Mapping[str, Any], object_info: ObjectInfo | Mapping[str, Any]) -> ApiGraph:
    """The API-format graph for an editor (UI-format) ``workflow``."""
    info = as_object_info(object_info)
    nodes = {int(node["id"]): node for node in workflow.get("nodes", [])}
    sources = _Sources(nodes, _links_table(workflow.get("links")))
    graph: ApiGraph = {}
    for node_id in sorted(nodes):
        node = nodes[node_id]
        class_type = node.get("type", "")
        if node.get("mode") in (MODE_MUTED, MODE_BYPASSED) or class_type in _VIRTUAL_CLASSES:
            continue
        node_def = _node_def(info, class_type, node_id)
        graph[str(node_id)] = {
            "class_type": class_type,
            "inputs": _api_inputs(node, node_def, sources),
            "_meta": {"title": node.get("title") or node_def.display_name},
        }
    return graph


_MISSING = object()


def _api_inputs(node: Mapping[str, Any], node_def: NodeDef, sources: _Sources) -> dict[str, Any]:
    sockets = {s["name"]: s.get("link") for s in node.get("inputs", [])}
    raw_values = node.get("widgets_values") or []
    by_name = raw_values if isinstance(raw_values, Mapping) else None
    sequence = iter([] if by_name is not None else raw_values)
    inputs: dict[str, Any] = {}
    for input_def in node_def.inputs:
        link_id = sockets.get(input_def.name)
        source = sources.source(link_id) if link_id is not None else None
        value: Any = _MISSING
        if input_def.is_widget:
            value = by_name.get(input_def.name, _MISSING) if by_name is not None else next(sequence, _MISSING)
            if input_def.has_control_after_generate and by_name is None:
                next(sequence, None)
        if source is not None:
            inputs[input_def.name] = [str(source[0]), source[1]]
        elif value is not _MISSING:
            inputs[input_def.name] = value
    inputs.update(node.get("properties", {}).get(EXTRA_INPUTS_PROPERTY, {}))
    return inputs
