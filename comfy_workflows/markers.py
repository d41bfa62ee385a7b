"""The Atelier node pack's marker vocabulary, and reading a graph's markers into template fields.

Rules (each broken one is a :class:`RegistrationProblem`): a node of a class named ``Atelier…Input`` must
be in :data:`MARKER_CLASSES`; a marker's ``name`` is a literal field name (``^[a-z][a-z0-9_]{0,63}$``), not
in :data:`RESERVED_FIELDS`, used by no other marker; its value input holds a literal of its kind (numeric
markers: literal ``min <= value <= max``); its output feeds some node.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from comfy_workflows.graph import ApiGraph, FieldMap
from comfy_workflows.issues import IssueKind, ValidationIssue
from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.templates.base import MAX_SEED, ModelsUsed

MarkerKind = Literal["prompt", "int", "float", "seed", "image", "checkpoint", "lora", "choice"]


@dataclass(frozen=True)
class MarkerClass:
    """How a marker class is read: its field kind, the input that holds its value, whether it has min/max."""

    kind: MarkerKind
    value_input: str
    bounded: bool


MARKER_CLASSES: Mapping[str, MarkerClass] = {
    "AtelierPromptInput": MarkerClass("prompt", "text", False),
    "AtelierIntInput": MarkerClass("int", "value", True),
    "AtelierFloatInput": MarkerClass("float", "value", True),
    "AtelierSeedInput": MarkerClass("seed", "seed", False),
    "AtelierImageInput": MarkerClass("image", "image", False),
    "AtelierCheckpointInput": MarkerClass("checkpoint", "ckpt_name", False),
    "AtelierLoraInput": MarkerClass("lora", "lora_name", False),
    "AtelierChoiceInput": MarkerClass("choice", "value", False),
}
"""The marker node classes of the Atelier node pack (a test holds this to the pack's own table)."""

LORA_LOADER_CLASSES = frozenset({"AtelierLoraLoader", "AtelierLoraLoaderModelOnly"})
"""The pack's loaders of files in ComfyUI's ``loras`` folders (their value names a file: backend affinity)."""
REMOTE_LORA_LOADER_CLASS = "AtelierRemoteLoraLoader"
"""The pack's loader of LoRAs it downloads from a LoRA Atelier server itself (its value names no local file)."""
ATELIER_NODE_CLASSES = frozenset(MARKER_CLASSES) | LORA_LOADER_CLASSES | {REMOTE_LORA_LOADER_CLASS}
"""Every node class of the pack; registration adds them to a policy's allowlist."""

RESERVED_FIELDS = frozenset({"template", "workflow", "inputs", "priority", "webhook_url"})
"""Request body keys of the generation API that a marker may not take as its name."""

TRIGGER_OPEN, TRIGGER_CLOSE = " (trigger: ", ")"
"""How the pack's LoRA loader appends a trigger word to its combo entries (``<key> (trigger: <word>)``)."""

MAX_TEXT = 10_000
MAX_FILE_NAME = 500
MAX_CHOICE = 64
"""Longest option name a choice field takes (the generation API's ``sampler`` and ``scheduler`` limit)."""
FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
FIELD_DESCRIPTIONS: Mapping[str, str] = {
    "prompt": "Text",
    "int": "A whole number",
    "float": "A number",
    "seed": "Noise seed, a random one when absent",
    "image": "File name of an uploaded input image",
    "checkpoint": "Checkpoint file name as the backend lists it",
    "lora": "LoRA file name as the backend lists it",
    "choice": "One of the options of the dropdown it feeds",
}


@dataclass(frozen=True)
class RegistrationProblem:
    """One reason a graph cannot be registered (``kind``: a slug, or a validation issue's kind)."""

    kind: str
    message: str
    node_id: str | None = None
    input_name: str | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


class TemplateField(BaseModel):
    """One request field of a registered template: a marker node and the input it sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: MarkerKind
    node_id: str
    input: str
    default: Any = None
    minimum: int | float | None = None
    maximum: int | float | None = None
    description: str = ""
    required: bool = False


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (2**63, node_id)


def read_markers(graph: ApiGraph, problems: list[RegistrationProblem]) -> list[TemplateField]:
    linked = {value[0] for node in graph.values() for value in node["inputs"].values() if _is_link(value)}
    fields: dict[str, TemplateField] = {}
    for node_id in sorted(graph, key=_node_order):
        class_type = graph[node_id].get("class_type")
        marker = MARKER_CLASSES.get(class_type) if isinstance(class_type, str) else None
        if marker is None:
            if isinstance(class_type, str) and class_type.startswith("Atelier") and class_type.endswith("Input"):
                message = f"node {node_id}: {class_type} is not a marker this service knows (a newer node pack?)"
                problems.append(RegistrationProblem("unknown_marker", message, node_id))
            continue
        field = _read_marker(node_id, marker, graph[node_id]["inputs"], problems)
        if field is None:
            continue
        if node_id not in linked:
            message = f"node {node_id}: marker {field.name!r} feeds no node, so its value would change nothing"
            problems.append(RegistrationProblem("unused_marker", message, node_id, field=field.name))
        if field.name in fields:
            first = fields[field.name].node_id
            message = f"nodes {first} and {node_id} both mark the field {field.name!r}"
            problems.append(RegistrationProblem("duplicate_field", message, node_id, "name", field.name))
            continue
        fields[field.name] = field
    return list(fields.values())


def _value_error(kind: MarkerKind, value: Any) -> str | None:
    if _is_link(value):
        return "must be set on the marker, not linked from another node"
    if kind == "prompt":
        return None if isinstance(value, str) else "must be text"
    if kind in ("int", "seed"):
        if type(value) is not int:
            return "must be a whole number"
        return None if kind == "int" or 0 <= value <= MAX_SEED else f"must lie in [0, {MAX_SEED}]"
    if kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "must be a number"
    if kind == "choice":
        return None if isinstance(value, str) and value else "must be the name of an option"
    return None if isinstance(value, str) and value else "must be a file name"


def _read_marker(
    node_id: str, marker: MarkerClass, inputs: Mapping[str, Any], problems: list[RegistrationProblem]
) -> TemplateField | None:
    def problem(input_name: str, message: str) -> None:
        problems.append(RegistrationProblem("bad_marker", f"node {node_id}: {message}", node_id, input_name))

    name = inputs.get("name")
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        problem("name", f"the field name {name!r} must match {FIELD_NAME.pattern}")
        return None
    if name in RESERVED_FIELDS:
        problem("name", f"the field name {name!r} is reserved by the generation API")
        return None
    value = inputs.get(marker.value_input)
    error = _value_error(marker.kind, value)
    if error:
        problem(marker.value_input, f"{marker.value_input!r} of {name!r} {error}")
        return None
    description = inputs.get("description", "")
    if not isinstance(description, str):
        problem("description", f"the description of {name!r} must be text")
        return None
    low, high = (inputs.get("min"), inputs.get("max")) if marker.bounded else (None, None)
    if marker.bounded and not _bounds_ok(marker.kind, value, low, high, lambda m: problem("min", f"{name!r}: {m}")):
        return None
    facts = {"name": name, "kind": marker.kind, "node_id": node_id, "input": marker.value_input}
    default = None if marker.kind in ("seed", "image") else value
    bounds = {"minimum": low, "maximum": high, "description": description.strip()}
    return TemplateField(**facts, default=default, required=marker.kind == "image", **bounds)


def _bounds_ok(kind: MarkerKind, value: Any, low: Any, high: Any, report: Any) -> bool:
    for bound in (low, high):
        if _value_error(kind, bound) is not None:
            report(f"min and max must be literal numbers, got {bound!r}")
            return False
    if low > high:
        report(f"min {low} is larger than max {high}")
        return False
    if not low <= value <= high:
        report(f"the default {value} lies outside [{low}, {high}]")
        return False
    return True


def choice_issues(graph: Mapping[str, Any], info: ObjectInfo, field_map: FieldMap) -> list[ValidationIssue]:
    """A choice marker's value must be an option of every dropdown it feeds (ComfyUI does not check a value
    that arrives through a link, so a wrong sampler name would otherwise fail only while running)."""
    issues = []
    for target_id, target in graph.items():
        target_def = info.node(str(target.get("class_type", "")))
        for input_name, value in target.get("inputs", {}).items():
            source = graph.get(value[0]) if _is_link(value) else None
            if source is None or source.get("class_type") != "AtelierChoiceInput" or target_def is None:
                continue
            item = target_def.input(input_name)
            if item is None or item.options is None or item.is_upload_list:
                continue
            chosen = source["inputs"].get("value")
            if chosen in item.options:
                continue
            shown = list(item.options[:20])
            where = f"{input_name!r} of node {target_id} ({target_def.class_type})"
            message = f"{chosen!r} is not an option of {where}; options: {shown}"
            field = field_map.get((value[0], "value"))
            issues.append(
                ValidationIssue(IssueKind.VALUE_NOT_IN_LIST, message, value[0], "AtelierChoiceInput", "value", field)
            )
    return issues


def lora_file_of_entry(entry: str) -> str:
    """The ``loras`` file name behind an Atelier LoRA loader's combo entry (``<key> (trigger: …)``)."""
    head, separator, _ = entry.partition(TRIGGER_OPEN)
    key = head if separator and entry.endswith(TRIGGER_CLOSE) else entry
    return key if key.endswith(".safetensors") else f"{key}.safetensors"


def _literals(graph: ApiGraph, *input_names: str) -> list[str]:
    return [
        value
        for node in graph.values()
        for name, value in node["inputs"].items()
        if name in input_names and isinstance(value, str)
    ]


def models_used(graph: ApiGraph) -> ModelsUsed:
    """The model files ``graph`` loads, read from its literal file-name inputs (for backend affinity)."""
    loras = _literals(graph, "lora_name")
    for node in graph.values():
        value = node["inputs"].get("lora")
        if node.get("class_type") in LORA_LOADER_CLASSES and isinstance(value, str):
            loras.append(lora_file_of_entry(value))
    checkpoints, unets, vaes = (_literals(graph, n) for n in ("ckpt_name", "unet_name", "vae_name"))
    return ModelsUsed(
        checkpoint=checkpoints[0] if checkpoints else None,
        unet=unets[0] if unets else None,
        text_encoders=tuple(dict.fromkeys(_literals(graph, "clip_name", "clip_name1", "clip_name2"))),
        vae=vaes[0] if vaes else None,
        loras=tuple(dict.fromkeys(loras)),
    )
