"""Registering a graph edited in ComfyUI as a template, its parameters marked by the Atelier marker nodes.

An advanced user opens a workflow in ComfyUI's editor, wires a parameter marker of our node pack
(``custom_nodes/atelier_nodes``) into each value a request may set, and sends the graph back (API format, or
the editor's UI format, which is converted with the backend's ``/object_info``). :func:`register_workflow`
reads the markers into the template's fields and checks the graph; :meth:`RegisteredTemplate.build` puts
request values into the markers' value inputs; :func:`render` does that and validates the result.

The markers' rules are in :mod:`comfy_workflows.markers`; besides them, with the markers' values the graph
must pass :mod:`comfy_workflows.validation` against the backend's ``/object_info`` (so it has an output
node), and the template's name must be free (not a built-in one).

Input schema (a pydantic model's JSON schema; unknown fields rejected): ``prompt`` string, ``int`` integer and
``float`` number with the marker's default, ``minimum`` and ``maximum``; ``seed`` optional integer in
``[0, 2**64-1]`` (random when absent); ``image`` required file name of an uploaded image; ``checkpoint`` and
``lora`` file names defaulting to the marker's value.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic import Field as ModelField

from comfy_workflows._policy import file_input_issues, policy_issues
from comfy_workflows.graph import ApiGraph, FieldMap
from comfy_workflows.issues import ValidationIssue
from comfy_workflows.markers import (
    ATELIER_NODE_CLASSES,
    FIELD_DESCRIPTIONS,
    MAX_CHOICE,
    MAX_FILE_NAME,
    MAX_TEXT,
    TEMPLATE_NAME,
    RegistrationProblem,
    TemplateField,
    choice_issues,
    models_used,
    read_markers,
)
from comfy_workflows.object_info import ObjectInfo, as_object_info
from comfy_workflows.templates import SeedSource, list_templates
from comfy_workflows.templates._stages import random_seed
from comfy_workflows.templates.base import MAX_SEED, BuiltWorkflow
from comfy_workflows.ui_format import UIFormatError, ui_to_api
from comfy_workflows.validation import RawWorkflowPolicy, validate_graph


class RegistrationError(ValueError):
    """The graph cannot be registered; :attr:`problems` says why, every reason found."""

    def __init__(self, problems: list[RegistrationProblem]) -> None:
        super().__init__("; ".join(problem.message for problem in problems))
        self.problems = problems


def _field_definition(field: TemplateField) -> tuple[Any, Any]:
    common: dict[str, Any] = {
        "alias": field.name,
        "description": field.description or f"{FIELD_DESCRIPTIONS[field.kind]} (node {field.node_id}).",
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
    if field.kind == "choice":
        return str, ModelField(field.default, min_length=1, max_length=MAX_CHOICE, **common)
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
    uploaded: Collection[str] = (),
) -> Rendered:
    """Build ``template`` with ``values`` and validate the graph (issues name the request field that set a value).

    ``uploaded`` are the file names this request uploads (its image fields): loaders may name those besides
    the files the backend lists.

    Raises ``pydantic.ValidationError`` when ``values`` break the input schema.
    """
    built = template.build(values, filename_prefix=filename_prefix, seed_source=seed_source)
    info = as_object_info(object_info)
    issues = _validate(built.graph, info, built.field_map, policy, FileInputs(uploaded=uploaded))
    return Rendered(built, issues)


@dataclasses.dataclass(frozen=True)
class FileInputs:
    """What loaders' file inputs may name besides the backend's files: files uploaded with the request, and
    inputs whose values each request supplies (checked when it is rendered)."""

    uploaded: Collection[str] = ()
    per_request: Collection[tuple[str, str]] = ()


def _validate(
    graph: Mapping[str, Any], info: ObjectInfo, field_map: FieldMap, policy: RawWorkflowPolicy | None, files: FileInputs
) -> list[ValidationIssue]:
    issues = validate_graph(graph, info, field_map)
    issues.extend(choice_issues(graph, info, field_map))
    if policy is not None:  # the raw-workflow allowlists, with our node classes allowed
        ours = dataclasses.replace(policy, allowed_classes=policy.allowed_classes | ATELIER_NODE_CLASSES)
        issues.extend(policy_issues(graph, ours))
        for issue in file_input_issues(graph, info, files.uploaded, files.per_request):
            field = field_map.get((issue.node_id or "", issue.input_name or ""))
            issues.append(dataclasses.replace(issue, field=field) if field else issue)
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
    fields = read_markers(graph, problems)
    field_map = {(f.node_id, f.input): f.name for f in fields}
    if not problems:
        for issue in _validate(graph, info, field_map, policy, FileInputs(per_request=field_map.keys())):
            problems.append(RegistrationProblem(issue.kind.value, issue.message, issue.node_id, issue.input_name))
    if problems:
        raise RegistrationError(problems)
    outputs = tuple(n for n, node in graph.items() if (d := info.node(node["class_type"])) and d.output_node)
    return RegisteredTemplate(
        name=name, description=description, graph=graph, fields=tuple(fields), output_node_ids=outputs
    )


def _name_problems(name: str) -> list[RegistrationProblem]:
    if not TEMPLATE_NAME.match(name):
        return [RegistrationProblem("bad_name", f"template name {name!r} must match {TEMPLATE_NAME.pattern}")]
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


def _graph_seed(graph: ApiGraph) -> int:
    for node in graph.values():
        for name in ("seed", "noise_seed"):
            if type(node["inputs"].get(name)) is int:
                return int(node["inputs"][name])
    return 0
