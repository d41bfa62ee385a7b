"""Check an API-format graph against a backend's ``/object_info`` before queueing it.

The checks mirror the reasons ComfyUI's ``POST /prompt`` rejects a prompt (its error ``type`` is kept in
:class:`IssueKind` values where one exists): unknown node class, required input missing, value not in list,
below min / above max, wrong value type, bad or dangling link, link type mismatch, no output node. On top of
that: output index out of range, dependency cycles, and for raw workflows from users a node-class allowlist and
remote URLs in string inputs (see :func:`validate_raw_workflow`).

Two deliberate differences from ComfyUI: every node is checked, not only those an output depends on; and
numbers must be JSON numbers (ComfyUI would convert the string ``"4"`` to an INT). Inputs a node does not
declare are ignored, as ComfyUI does. Combos that list uploaded files (``image_upload`` and the like) are not
checked against their list by :func:`validate_graph` (our templates upload their images just before the
prompt); :func:`validate_raw_workflow` checks them: a plain file name the backend lists, or one uploaded with
the request.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from comfy_workflows._policy import DEFAULT_ALLOWED_CLASSES, RawWorkflowPolicy, file_input_issues, policy_issues
from comfy_workflows.issues import IssueKind, ValidationIssue
from comfy_workflows.object_info import InputDef, NodeDef, ObjectInfo, as_object_info
from comfy_workflows.templates.base import BuiltWorkflow

__all__ = [
    "DEFAULT_ALLOWED_CLASSES",
    "IssueKind",
    "RawWorkflowPolicy",
    "ValidationIssue",
    "types_compatible",
    "validate_built",
    "validate_graph",
    "validate_raw_workflow",
]

_FRIENDLY_NAMES = {
    "ckpt_name": "checkpoint",
    "lora_name": "LoRA",
    "sampler_name": "sampler",
    "unet_name": "diffusion model",
    "clip_name1": "text encoder",
    "clip_name2": "text encoder",
    "vae_name": "VAE",
    "image": "image",
}
_OFFERED_PREVIEW = 20


_NUMBER_TYPES = frozenset({"INT", "FLOAT"})
_VALUE_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "*"})


@dataclass
class _Context:
    graph: Mapping[str, Any]
    info: ObjectInfo
    field_map: Mapping[tuple[str, str], str]
    issues: list[ValidationIssue]

    def add(
        self,
        kind: IssueKind,
        message: str,
        node_id: str | None = None,
        node: NodeDef | None = None,
        input_name: str | None = None,
        class_type: str | None = None,
    ) -> None:
        field = self.field_map.get((node_id, input_name)) if node_id and input_name else None
        self.issues.append(
            ValidationIssue(kind, message, node_id, node.class_type if node else class_type, input_name, field)
        )


def validate_graph(
    graph: Mapping[str, Any],
    object_info: ObjectInfo | Mapping[str, Any],
    field_map: Mapping[tuple[str, str], str] | None = None,
) -> list[ValidationIssue]:
    """Every reason the backend described by ``object_info`` would reject ``graph``; empty when none.

    ``field_map`` (``(node_id, input_name)`` -> request field path) names the request field in each issue.
    """
    ctx = _Context(graph, as_object_info(object_info), field_map or {}, [])
    if not isinstance(graph, Mapping) or not graph:
        ctx.add(IssueKind.MALFORMED, "the workflow must be a non-empty object of nodes keyed by node id")
        return ctx.issues
    for node_id, node in graph.items():
        _check_node(ctx, str(node_id), node)
    _check_has_output(ctx)
    _check_cycles(ctx)
    return ctx.issues


def validate_built(built: BuiltWorkflow, object_info: ObjectInfo | Mapping[str, Any]) -> list[ValidationIssue]:
    """:func:`validate_graph` for a template's ``BuiltWorkflow`` (uses its graph and field map)."""
    return validate_graph(built.graph, object_info, built.field_map)


def validate_raw_workflow(
    graph: Mapping[str, Any],
    object_info: ObjectInfo | Mapping[str, Any],
    policy: RawWorkflowPolicy,
    uploaded: Collection[str] = (),
) -> list[ValidationIssue]:
    """:func:`validate_graph` plus ``policy`` (node classes outside its allowlist, URLs that are not http(s) to
    an allowed host) and the loaders' file inputs: plain file names the backend lists, or in ``uploaded``."""
    info = as_object_info(object_info)
    issues = validate_graph(graph, info)
    if isinstance(graph, Mapping):
        issues.extend(policy_issues(graph, policy))
        issues.extend(file_input_issues(graph, info, uploaded))
    return issues


def _check_node(ctx: _Context, node_id: str, node: Any) -> None:
    if not isinstance(node, Mapping) or not isinstance(node.get("class_type"), str):
        ctx.add(IssueKind.MALFORMED, f"node {node_id} has no class_type", node_id)
        return
    class_type = node["class_type"]
    inputs = node.get("inputs", {})
    if not isinstance(inputs, Mapping):
        ctx.add(IssueKind.MALFORMED, f"node {node_id} ({class_type}): inputs must be an object", node_id)
        return
    node_def = ctx.info.node(class_type)
    if node_def is None:
        message = f"node class {class_type!r} is not installed on the backend"
        ctx.add(IssueKind.UNKNOWN_CLASS, message, node_id, class_type=class_type)
        return
    for input_def in node_def.inputs:
        if input_def.name not in inputs:
            if input_def.required:
                message = f"required input {input_def.name!r} of {class_type} is missing"
                ctx.add(IssueKind.MISSING_INPUT, message, node_id, node_def, input_def.name)
            continue
        _check_input(ctx, node_id, node_def, input_def, inputs[input_def.name])


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and type(value[1]) is int


def _check_input(ctx: _Context, node_id: str, node: NodeDef, input_def: InputDef, value: Any) -> None:
    if _is_link(value):
        _check_link(ctx, node_id, node, input_def, value)
    elif isinstance(value, list) and not (input_def.type == "COMBO" and input_def.config.get("multiselect")):
        message = f"input {input_def.name!r} must be a value or a link [node_id, output_index], got {value!r}"
        ctx.add(IssueKind.BAD_LINK, message, node_id, node, input_def.name)
    elif input_def.type == "COMBO":
        for item in value if isinstance(value, list) else [value]:
            _check_combo(ctx, node_id, node, input_def, item)
    else:
        _check_literal(ctx, node_id, node, input_def, value)


def _check_link(ctx: _Context, node_id: str, node: NodeDef, input_def: InputDef, link: list[Any]) -> None:
    source_id, index = link
    source = ctx.graph.get(source_id)
    name = input_def.name
    if source is None:
        ctx.add(
            IssueKind.LINK_TO_MISSING_NODE,
            f"input {name!r} links to node {source_id}, which does not exist",
            node_id,
            node,
            name,
        )
        return
    source_def = ctx.info.node(source.get("class_type", "")) if isinstance(source, Mapping) else None
    if source_def is None:
        return  # the source node's own issue is reported where that node is checked
    if not 0 <= index < len(source_def.outputs):
        ctx.add(
            IssueKind.LINK_TO_MISSING_OUTPUT,
            f"input {name!r} links to output {index} of node {source_id} ({source_def.class_type}), "
            f"which has {len(source_def.outputs)} outputs",
            node_id,
            node,
            name,
        )
        return
    received = source_def.outputs[index]
    if not types_compatible(received, input_def.type):
        ctx.add(
            IssueKind.TYPE_MISMATCH,
            f"input {name!r} takes {input_def.type} but node {source_id} ({source_def.class_type}) "
            f"output {index} gives {received}",
            node_id,
            node,
            name,
        )


def _is_template_type(type_name: str) -> bool:
    """ComfyUI V3 template/dynamic types (``COMFY_MATCHTYPE_V3``, ``COMFY_AUTOGROW_V3``...) take any value."""
    return type_name.startswith("COMFY_") and type_name.endswith("_V3")


def types_compatible(received: str, expected: str) -> bool:
    """Whether an output of type ``received`` may feed an input of type ``expected``.

    ``*`` and ComfyUI's V3 template types (``COMFY_..._V3``) match anything; comma-separated unions match
    when they share a type.
    """
    if any(t == "*" or _is_template_type(t) for t in (received, expected)):
        return True
    received_set = {t.strip() for t in received.split(",")}
    return not received_set.isdisjoint(t.strip() for t in expected.split(","))


def _offered_text(options: tuple[Any, ...]) -> str:
    if not options:
        return "none"
    shown = [*options[:_OFFERED_PREVIEW]]
    more = f" ... ({len(options)} in all)" if len(options) > _OFFERED_PREVIEW else ""
    return f"{shown}{more}"


def _check_combo(ctx: _Context, node_id: str, node: NodeDef, input_def: InputDef, value: Any) -> None:
    name = input_def.name
    if input_def.is_upload_list:
        if not isinstance(value, str) or not value:
            ctx.add(IssueKind.WRONG_TYPE, f"input {name!r} must be a file name, got {value!r}", node_id, node, name)
        return
    if input_def.offers(value):
        return
    what = _FRIENDLY_NAMES.get(name, name)
    message = f"{what} {value!r} is not offered by the backend; offered: {_offered_text(input_def.options or ())}"
    ctx.add(IssueKind.VALUE_NOT_IN_LIST, message, node_id, node, name)


def _type_error(type_name: str, value: Any) -> str | None:
    if type_name == "INT" and (type(value) is not int):
        return f"expected a whole number, got {value!r}"
    if type_name == "FLOAT" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        return f"expected a number, got {value!r}"
    if type_name == "STRING" and not isinstance(value, str):
        return f"expected text, got {value!r}"
    if type_name == "BOOLEAN" and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    if type_name not in _VALUE_TYPES and not _is_template_type(type_name):
        return f"needs a link from a node that outputs {type_name}, got the value {value!r}"
    return None


def _check_literal(ctx: _Context, node_id: str, node: NodeDef, input_def: InputDef, value: Any) -> None:
    name = input_def.name
    error = _type_error(input_def.type, value)
    if error:
        ctx.add(IssueKind.WRONG_TYPE, f"input {name!r}: {error}", node_id, node, name)
        return
    if input_def.type not in _NUMBER_TYPES:
        return
    low, high = input_def.config.get("min"), input_def.config.get("max")
    if low is not None and value < low:
        ctx.add(IssueKind.BELOW_MIN, f"input {name!r} is {value}, below the minimum {low}", node_id, node, name)
    elif high is not None and value > high:
        ctx.add(IssueKind.ABOVE_MAX, f"input {name!r} is {value}, above the maximum {high}", node_id, node, name)


def _check_has_output(ctx: _Context) -> None:
    for node in ctx.graph.values():
        node_def = ctx.info.node(node.get("class_type", "")) if isinstance(node, Mapping) else None
        if node_def is not None and node_def.output_node:
            return
    ctx.add(IssueKind.NO_OUTPUTS, "the workflow has no output node (such as SaveImage), so nothing would run")


def _links_of(node: Any) -> list[str]:
    inputs = node.get("inputs", {}) if isinstance(node, Mapping) else {}
    if not isinstance(inputs, Mapping):
        return []
    return [value[0] for value in inputs.values() if _is_link(value)]


def _check_cycles(ctx: _Context) -> None:
    """Report one node per dependency cycle (ComfyUI refuses to run those)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in ctx.graph:
        stack: list[tuple[str, list[str]]] = [(start, _links_of(ctx.graph[start]))] if start not in state else []
        state.setdefault(start, 1)
        while stack:
            node_id, pending = stack[-1]
            if not pending:
                state[node_id] = 2
                stack.pop()
                continue
            nxt = pending.pop()
            if nxt not in ctx.graph or state.get(nxt) == 2:
                continue
            if state.get(nxt) == 1:
                ctx.add(
                    IssueKind.CYCLE,
                    f"node {node_id} depends on node {nxt}, which depends on it",
                    node_id,
                    class_type=ctx.graph[node_id].get("class_type"),
                )
                continue
            state[nxt] = 1
            stack.append((nxt, _links_of(ctx.graph[nxt])))
