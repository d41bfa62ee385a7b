"""A built template's graph with a parameter marker wired in for each request field, ready to edit and register.

A person who wants a request field to set a value in ComfyUI's editor adds the matching marker of our node pack,
names it after the field and drags its output onto the input (which turns the widget into a socket). This does
the same for every field of a template's field map: one marker per field, however many inputs the field sets,
with the field's value as the marker's default, the request model's bounds as ``min``/``max`` and its
description. Registering the result gives back a template with the same request fields
(:func:`comfy_workflows.registration.register_workflow`).

Which marker: ``seed``/``noise_seed`` inputs get the seed marker, Load Image's ``image`` becomes the image marker
in place (it loads the image itself), ``ckpt_name``/``lora_name`` get the file-name markers, other dropdowns
(sampler, scheduler) the choice marker, and INT, FLOAT and STRING widgets the integer, float and prompt markers.
A field is left as it is (and reported in :attr:`MarkedGraph.unmarked`) when one marker cannot stand for it: a
list item (``loras[0].lora``: add Atelier LoRA loaders instead), or one field that sets inputs to different
values (Flux's ``base_model`` names four files).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from comfy_workflows.graph import ApiGraph, FieldMap
from comfy_workflows.object_info import InputDef, ObjectInfo
from comfy_workflows.templates.base import BuiltWorkflow

_NUMBER_LIMIT = {"INT": 2**53 - 1, "FLOAT": 1e9}
_MARKER_OF_TYPE = {"INT": "AtelierIntInput", "FLOAT": "AtelierFloatInput", "STRING": "AtelierPromptInput"}
_FILE_MARKERS = {"ckpt_name": "AtelierCheckpointInput", "lora_name": "AtelierLoraInput"}
_VALUE_INPUT = {
    "AtelierPromptInput": "text",
    "AtelierIntInput": "value",
    "AtelierFloatInput": "value",
    "AtelierSeedInput": "seed",
    "AtelierImageInput": "image",
    "AtelierCheckpointInput": "ckpt_name",
    "AtelierLoraInput": "lora_name",
    "AtelierChoiceInput": "value",
}
SEED_INPUTS = frozenset({"seed", "noise_seed"})
_NOT_IN_GRAPH = {"loras": "a list of LoRAs: add Atelier LoRA loader nodes in the editor instead"}


@dataclass(frozen=True)
class MarkedGraph:
    """The graph with markers, which request field each marker's value input stands for, and what was left."""

    graph: ApiGraph
    field_map: FieldMap
    """``(marker node id, value input)`` -> request field."""
    unmarked: dict[str, str] = field(default_factory=dict)
    """Request field -> why no marker stands for it."""


def _property(schema: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A field's JSON schema with ``anyOf [X, null]`` (an optional field) read as X, keeping its description."""
    prop = dict(schema.get("properties", {}).get(name, {}))
    for option in prop.pop("anyOf", []):
        if option.get("type") != "null":
            prop = {**option, **prop}
    return prop


def _marker_class(input_def: InputDef, class_type: str) -> str | None:
    if input_def.name in SEED_INPUTS and input_def.type == "INT":
        return "AtelierSeedInput"
    if class_type == "LoadImage" and input_def.name == "image":
        return "AtelierImageInput"
    if input_def.type == "COMBO":
        return _FILE_MARKERS.get(input_def.name, "AtelierChoiceInput")
    return _MARKER_OF_TYPE.get(input_def.type)


def _bounds(prop: Mapping[str, Any], input_def: InputDef) -> dict[str, Any]:
    limit = _NUMBER_LIMIT[input_def.type]
    low = prop.get("minimum", input_def.config.get("min", -limit))
    high = prop.get("maximum", input_def.config.get("max", limit))
    if input_def.type == "FLOAT":
        return {"min": float(low), "max": float(high)}
    return {"min": int(low), "max": int(high)}


def _targets_by_field(built: BuiltWorkflow) -> dict[str, list[tuple[str, str]]]:
    targets: dict[str, list[tuple[str, str]]] = {}
    for (node_id, input_name), name in sorted(built.field_map.items(), key=lambda item: int(item[0][0])):
        targets.setdefault(name, []).append((node_id, input_name))
    return targets


@dataclass(frozen=True)
class _Plan:
    """How one field gets its marker: the marker class and the input definition its value comes from."""

    class_type: str
    input_def: InputDef


def mark_fields(built: BuiltWorkflow, request_model: type[BaseModel], info: ObjectInfo) -> MarkedGraph:
    """``built``'s graph with one marker per request field of its field map, in the request model's field order.

    ``info`` must know the graph's classes (a backend's ``/object_info``, or the known node definitions).
    """
    graph = copy.deepcopy(built.graph)
    schema = request_model.model_json_schema()
    targets = _targets_by_field(built)
    order = [name for name in request_model.model_fields if name in targets]
    order += sorted(name for name in targets if name not in order)
    next_id = max((int(n) for n in graph if n.isdigit()), default=0) + 1
    field_map: FieldMap = {}
    unmarked: dict[str, str] = {}
    for name in order:
        plan = _plan(graph, name, targets[name], info)
        if isinstance(plan, str):
            unmarked[name] = plan
            continue
        marker_id = _wire_marker(graph, name, targets[name], plan, _property(schema, name), str(next_id))
        field_map[(marker_id, _VALUE_INPUT[plan.class_type])] = name
        next_id += 1
    for name in request_model.model_fields:
        if name not in targets and name != "template":
            unmarked[name] = _NOT_IN_GRAPH.get(name, "the example's graph has no input this field sets")
    return MarkedGraph(graph, field_map, unmarked)


def _plan(graph: ApiGraph, name: str, targets: list[tuple[str, str]], info: ObjectInfo) -> _Plan | str:
    """The marker for field ``name``, or why none can stand for it."""
    if "[" in name or "." in name:
        return "an item of a list field: add Atelier LoRA loader nodes in the editor instead"
    values = {json.dumps(graph[node_id]["inputs"][input_name]) for node_id, input_name in targets}
    if len(values) > 1:
        return f"sets {len(targets)} inputs to different values (one marker holds one value)"
    plans: list[_Plan] = []
    for node_id, input_name in targets:
        class_type = graph[node_id]["class_type"]
        node_def = info.node(class_type)
        input_def = node_def.input(input_name) if node_def else None
        marker = _marker_class(input_def, class_type) if input_def else None
        if input_def is None or marker is None:
            return f"no marker of the node pack takes {class_type}'s {input_name!r}"
        plans.append(_Plan(marker, input_def))
    if len({plan.class_type for plan in plans}) != 1:
        return "its inputs would need different markers"
    plan = plans[0]
    if plan.class_type == "AtelierImageInput" and len(targets) != 1:
        return "an image marker replaces one Load Image node"
    return plan


def _wire_marker(
    graph: ApiGraph, name: str, targets: list[tuple[str, str]], plan: _Plan, prop: Mapping[str, Any], new_id: str
) -> str:
    """Add the marker of field ``name`` as node ``new_id`` and link it where the field's value went (an image
    marker replaces the Load Image node and takes its links); returns ``new_id``."""
    node_id, input_name = targets[0]
    inputs: dict[str, Any] = {"name": name, _VALUE_INPUT[plan.class_type]: graph[node_id]["inputs"][input_name]}
    if plan.class_type in ("AtelierIntInput", "AtelierFloatInput"):
        inputs.update(_bounds(prop, plan.input_def))
    inputs["description"] = str(prop.get("description", ""))
    graph[new_id] = {"class_type": plan.class_type, "inputs": inputs, "_meta": {"title": name}}
    if plan.class_type == "AtelierImageInput":  # the marker loads the image itself: it takes Load Image's place
        del graph[node_id]
        for node in graph.values():
            for input_name, value in node["inputs"].items():
                if isinstance(value, list) and len(value) == 2 and value[0] == node_id:
                    node["inputs"][input_name] = [new_id, value[1]]
        return new_id
    for target_id, target_input in targets:
        graph[target_id]["inputs"][target_input] = [new_id, 0]
    return new_id
