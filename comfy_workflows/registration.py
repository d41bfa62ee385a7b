"""Registering a graph edited in ComfyUI as a template, its parameters marked by the Atelier marker nodes.

An advanced user opens a workflow in ComfyUI's editor, wires a parameter marker of our node pack
(``custom_nodes/atelier_nodes``) into each value a request may set, and sends the graph back (API format, or
the editor's UI format, which is converted with the backend's ``/object_info``). :func:`register_workflow`
reads the markers into the template's fields and checks the graph; :meth:`RegisteredTemplate.build` puts
request values into the markers' value inputs; :func:`render` does that and validates the result.

Rules (each broken one is a :class:`RegistrationProblem`): a node of a class named ``Atelier…Input`` must
be in :data:`MARKER_CLASSES`; a marker's ``name`` is a literal field name (``^[a-z][a-z0-9_]{0,63}$``), not
in :data:`RESERVED_FIELDS`, used by no other marker; its value input holds a literal of its kind (numeric
markers: literal ``min <= value <= max``); its output feeds some node; and with the markers' values the graph
passes :mod:`comfy_workflows.validation` against the backend's ``/object_info`` (so it has an output node).

Input schema (a pydantic model's JSON schema; unknown fields rejected): ``prompt`` string, ``int`` integer and
``float`` number with the marker's default, ``minimum`` and ``maximum``; ``seed`` optional integer in
``[0, 2**64-1]`` (random when absent); ``image`` required file name of an uploaded image; ``checkpoint`` and
``lora`` file names defaulting to the marker's value.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as ModelField

from comfy_workflows._policy import policy_issues
from comfy_workflows.graph import ApiGraph, FieldMap
from comfy_workflows.issues import ValidationIssue
from comfy_workflows.object_info import ObjectInfo, as_object_info
from comfy_workflows.templates import SeedSource, list_templates
from comfy_workflows.templates._stages import random_seed
from comfy_workflows.templates.base import MAX_SEED, BuiltWorkflow, ModelsUsed
from comfy_workflows.ui_format import UIFormatError, ui_to_api
from comfy_workflows.validation import RawWorkflowPolicy, validate_graph

MarkerKind = Literal["prompt", "int", "float", "seed", "image", "checkpoint", "lora"]


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
}
"""The marker node classes of the Atelier node pack (a test holds this to the pack's own table)."""

LORA_LOADER_CLASSES = frozenset({"AtelierLoraLoader", "AtelierLoraLoaderModelOnly"})
ATELIER_NODE_CLASSES = frozenset(MARKER_CLASSES) | LORA_LOADER_CLASSES
"""Every node class of the pack; registration adds them to a policy's allowlist."""

RESERVED_FIELDS = frozenset({"template", "workflow", "inputs", "priority", "webhook_url"})
"""Request body keys of the generation API that a marker may not take as its name."""

TRIGGER_OPEN, TRIGGER_CLOSE = " (trigger: ", ")"
"""How the pack's LoRA loader appends a trigger word to its combo entries (``<key> (trigger: <word>)``)."""

MAX_TEXT = 10_000
MAX_FILE_NAME = 500
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
_DESCRIPTIONS: Mapping[str, str] = {
    "prompt": "Text",
    "int": "A whole number",
    "float": "A number",
    "seed": "Noise seed, a random one when absent",
    "image": "File name of an uploaded input image",
    "checkpoint": "Checkpoint file name as the backend lists it",
    "lora": "LoRA file name as the backend lists it",
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


class RegistrationError(ValueError):
    """The graph cannot be registered; :attr:`problems` says why, every reason found."""

    def __init__(self, problems: list[RegistrationProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


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


def _field_definition(field: TemplateField) -> tuple[Any, Any]:
    common: dict[str, Any] = {
        "alias": field.name,
        "description": field.description or f"{_DESCRIPTIONS[field.kind]} (node {field.node_id}).",
    }
    if field.kind == "prompt":
        return str, ModelField(field.default, max_length=MAX_TEXT, **common)
    if field.kind == "int":
        return int, ModelField(field.default, ge=field.minimum, le=field.maximum, **common)
    if field.kind == "float":
        return float, ModelField(field.default, ge=field.minimum, le=field.maximum, allow_inf_nan=False, **common)
    if field.kind == "seed":
        return int | None, ModelField(None, ge=0, le=MAX_SEED, **common)
    if field.kind == "image":
        return str, ModelField(min_length=1, max_length=MAX_FILE_NAME, **common)
    return str, ModelField(field.default, min_length=1, max_length=MAX_FILE_NAME, **common)


class RegisteredTemplate(BaseModel):
    """A template registered from an edited graph; JSON-serialisable (``model_dump(mode="json")``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    graph: dict[str, dict[str, Any]]
    """The API-format graph with the markers' values as registered."""
    fields: tuple[TemplateField, ...] = ()
    output_node_ids: tuple[str, ...] = ()

    def field_map(self) -> FieldMap:
        """``(marker node id, value input)`` -> request field name."""
        return {(field.node_id, field.input): field.name for field in self.fields}

    @functools.cached_property
    def request_model(self) -> type[BaseModel]:
        """The pydantic model of a request's values (fields by their marker names; unknown ones rejected)."""
        definitions: dict[str, Any] = {f"field_{i}": _field_definition(f) for i, f in enumerate(self.fields)}
        config = ConfigDict(extra="forbid", title=f"{self.name} request")
        return create_model(f"Registered_{self.name}", __config__=config, **definitions)

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of a request's values."""
        return self.request_model.model_json_schema()

    def parse(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` checked, defaults filled in, by field name (raises ``pydantic.ValidationError``)."""
        return self.request_model.model_validate(dict(values)).model_dump(by_alias=True)

    def build(
        self, values: Mapping[str, Any], *, filename_prefix: str | None = None, seed_source: SeedSource | None = None
    ) -> BuiltWorkflow:
        """The graph with ``values`` put into the markers' value inputs (not validated; see :func:`render`).

        ``filename_prefix``, when given, replaces the ``filename_prefix`` of every output node that has one.
        A seed field left out gets a seed from ``seed_source`` (random by default).
        """
        parsed = self.parse(values)
        graph = copy.deepcopy(self.graph)
        seeds: list[int] = []
        for field in self.fields:
            value = parsed[field.name]
            if field.kind == "seed":
                value = (seed_source or random_seed)() if value is None else value
                seeds.append(value)
            graph[field.node_id]["inputs"][field.input] = value
        if filename_prefix is not None:
            for node_id in self.output_node_ids:
                inputs = graph[node_id]["inputs"]
                if isinstance(inputs.get("filename_prefix"), str):
                    inputs["filename_prefix"] = filename_prefix
        seed = seeds[0] if seeds else _graph_seed(graph)
        return BuiltWorkflow(self.name, graph, self.output_node_ids, seed, models_used(graph), self.field_map())


@dataclass(frozen=True)
class Rendered:
    """A registered template built for one request, and what the backend would reject in it."""

    built: BuiltWorkflow
    issues: list[ValidationIssue]


def render(
    template: RegisteredTemplate,
    values: Mapping[str, Any],
    object_info: ObjectInfo | Mapping[str, Any],
    *,
    filename_prefix: str | None = None,
    seed_source: SeedSource | None = None,
    policy: RawWorkflowPolicy | None = None,
) -> Rendered:
    """Build ``template`` with ``values`` and validate the graph (issues name the request field that set a value).

    Raises ``pydantic.ValidationError`` when ``values`` break the input schema.
    """
    built = template.build(values, filename_prefix=filename_prefix, seed_source=seed_source)
    return Rendered(built, _validate(built.graph, as_object_info(object_info), built.field_map, policy))


def _validate(
    graph: Mapping[str, Any], info: ObjectInfo, field_map: FieldMap, policy: RawWorkflowPolicy | None
) -> list[ValidationIssue]:
    issues = validate_graph(graph, info, field_map)
    if policy is not None:  # the raw-workflow allowlists, with our node classes allowed
        ours = dataclasses.replace(policy, allowed_classes=policy.allowed_classes | ATELIER_NODE_CLASSES)
        issues.extend(policy_issues(graph, ours))
    return issues


def register_workflow(
    workflow: Mapping[str, Any],
    object_info: ObjectInfo | Mapping[str, Any],
    *,
    name: str,
    description: str = "",
    policy: RawWorkflowPolicy | None = None,
) -> RegisteredTemplate:
    """The template for ``workflow`` (API or UI format) as edited in ComfyUI; raises :class:`RegistrationError`.

    ``object_info`` is the backend's ``/object_info`` (it must list the Atelier nodes); ``policy``, when given,
    also applies the raw-workflow allowlists (the Atelier node classes are allowed in any case).
    """
    info = as_object_info(object_info)
    problems = _name_problems(name)
    graph = _api_graph(workflow, info, problems)
    if graph is None:
        raise RegistrationError(problems)
    fields = _read_markers(graph, problems)
    field_map = {(f.node_id, f.input): f.name for f in fields}
    if not problems:
        for issue in _validate(graph, info, field_map, policy):
            problems.append(RegistrationProblem(issue.kind.value, issue.message, issue.node_id, issue.input_name))
    if problems:
        raise RegistrationError(problems)
    outputs = tuple(n for n, node in graph.items() if (d := info.node(node["class_type"])) and d.output_node)
    return RegisteredTemplate(
        name=name, description=description, graph=graph, fields=tuple(fields), output_node_ids=outputs
    )


def _name_problems(name: str) -> list[RegistrationProblem]:
    if not _TEMPLATE_NAME.match(name):
        return [RegistrationProblem("bad_name", f"template name {name!r} must match {_TEMPLATE_NAME.pattern}")]
    if name in {template.name for template in list_templates()}:
        return [RegistrationProblem("reserved_name", f"{name!r} is the name of a built-in template")]
    return []


def _api_graph(workflow: Any, info: ObjectInfo, problems: list[RegistrationProblem]) -> ApiGraph | None:
    if not isinstance(workflow, Mapping) or not workflow:
        problems.append(RegistrationProblem("malformed_workflow", "the workflow must be a non-empty JSON object"))
        return None
    if isinstance(workflow.get("nodes"), list):
        try:
            return ui_to_api(workflow, info)
        except (UIFormatError, KeyError, TypeError, ValueError) as exc:
            problems.append(RegistrationProblem("malformed_workflow", f"cannot read the editor format: {exc}"))
            return None
    graph = copy.deepcopy(dict(workflow))
    bad = [
        str(n)
        for n, node in graph.items()
        if not isinstance(node, Mapping) or not isinstance(node.get("inputs"), Mapping)
    ]
    if bad:
        problems.append(RegistrationProblem("malformed_workflow", f"nodes {bad} have no inputs object"))
        return None
    return {str(node_id): node for node_id, node in graph.items()}


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (2**63, node_id)


def _read_markers(graph: ApiGraph, problems: list[RegistrationProblem]) -> list[TemplateField]:
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
    return None if isinstance(value, str) and value else "must be a file name"


def _read_marker(
    node_id: str, marker: MarkerClass, inputs: Mapping[str, Any], problems: list[RegistrationProblem]
) -> TemplateField | None:
    def problem(input_name: str, message: str) -> None:
        problems.append(RegistrationProblem("bad_marker", f"node {node_id}: {message}", node_id, input_name))

    name = inputs.get("name")
    if not isinstance(name, str) or not _FIELD_NAME.match(name):
        problem("name", f"the field name {name!r} must match {_FIELD_NAME.pattern}")
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


def _graph_seed(graph: ApiGraph) -> int:
    for node in graph.values():
        for name in ("seed", "noise_seed"):
            if type(node["inputs"].get(name)) is int:
                return int(node["inputs"][name])
    return 0
