# SPDX-License-Identifier: Apache-2.0
"""Graph validation with ComfyUI's error bodies (``/prompt`` 400 answers).

Follows the recorded behaviour of ComfyUI's validator: unknown classes stop at once
(``missing_node_type``); a prompt without output nodes is ``prompt_no_outputs``; otherwise
every output node's inputs are checked recursively and errors are gathered per node with the
output nodes that depend on them. An exception while validating a linked node (a link to a
node that does not exist) is reported, as ComfyUI does, on the linked node with the input
of the node that linked to it.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from tests.standin.comfyui.recordings import combo_options

_COMBO_LIST_LIMIT = 20
_CONVERTERS: dict[str, Any] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


@dataclass
class Verdict:
    """Outcome of validating one prompt."""

    ok: bool
    error: dict[str, Any] | None = None
    node_errors: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


def _error(kind: str, message: str, details: str = "", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra or {}}


def is_link(value: Any) -> bool:
    """API-format links are ``[node_id, output_index]``."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _types_match(received: str, wanted: Any) -> bool:
    if not isinstance(wanted, str):
        return True  # combo inputs fed by a primitive/combo output
    if received == wanted or "*" in (received, wanted):
        return True
    return {t.strip() for t in received.split(",")} <= {t.strip() for t in wanted.split(",")}


class _Validator:
    def __init__(self, prompt: dict[str, Any], object_info: dict[str, Any], image_exists: Any) -> None:
        self.prompt = prompt
        self.info = object_info
        self.image_exists = image_exists
        self.validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}

    def node(self, node_id: str) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.validated:
            return self.validated[node_id]
        self.validated[node_id] = (True, [])  # cycles are not our problem here
        spec = self.info[self.prompt[node_id]["class_type"]]
        inputs = self.prompt[node_id].get("inputs") or {}
        required = spec.get("input", {}).get("required") or {}
        optional = spec.get("input", {}).get("optional") or {}
        errors: list[dict[str, Any]] = []
        valid = True
        for name, input_spec in [*required.items(), *optional.items()]:
            if name not in inputs:
                if name in required:
                    errors.append(
                        _error("required_input_missing", "Required input is missing", name, {"input_name": name})
                    )
                continue
            value = inputs[name]
            if is_link(value):
                valid &= self._link(name, input_spec, value, errors)
            else:
                self._value(node_id, name, input_spec, value, errors)
        result = (valid and not errors, errors)
        self.validated[node_id] = result
        return result

    def _link(self, name: str, spec: list[Any], link: list[Any], errors: list[dict[str, Any]]) -> bool:
        source = link[0]
        source_class = self.prompt[source]["class_type"]  # KeyError propagates, as in ComfyUI
        outputs = self.info[source_class]["output"]
        received = outputs[link[1]] if link[1] < len(outputs) else "*"
        if not _types_match(received, spec[0]):
            details = f"{name}, received_type({received}) mismatch input_type({spec[0]})"
            errors.append(
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    details,
                    {"input_name": name, "input_config": spec, "received_type": received, "linked_node": link},
                )
            )
            return True
        try:
            ok, _ = self.node(source)
        except Exception as exc:
            reason = _error(
                "exception_during_inner_validation",
                "Exception when validating inner node",
                str(exc),
                {
                    "input_name": name,
                    "input_config": spec,
                    "exception_message": str(exc),
                    "exception_type": type(exc).__name__,
                    "traceback": traceback.format_tb(exc.__traceback__),
                    "linked_node": link,
                },
            )
            self.validated[source] = (False, [reason])
            return False
        return ok

    def _value(self, node_id: str, name: str, spec: list[Any], value: Any, errors: list[dict[str, Any]]) -> None:
        kind = spec[0]
        extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        convert = _CONVERTERS.get(kind) if isinstance(kind, str) else None
        try:
            value = convert(value) if convert is not None else value
        except (TypeError, ValueError) as exc:
            errors.append(
                _error(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {kind} value",
                    f"{name}, {value}, {exc}",
                    {"input_name": name, "input_config": spec, "received_value": value, "exception_message": str(exc)},
                )
            )
            return
        bounds = {"input_name": name, "input_config": spec, "received_value": value}
        if "min" in extra and value < extra["min"]:
            errors.append(
                _error("value_smaller_than_min", f"Value {value} smaller than min of {extra['min']}", name, bounds)
            )
        if "max" in extra and value > extra["max"]:
            errors.append(
                _error("value_bigger_than_max", f"Value {value} bigger than max of {extra['max']}", name, bounds)
            )
        if extra.get("image_upload"):
            if not self.image_exists(str(value)):
                errors.append(
                    _error(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        f"{name} - Invalid image file: {value}",
                        {"input_name": name},
                    )
                )
            return
        options = combo_options(spec)
        if options is not None and value not in options:
            listed = f"(list of length {len(options)})" if len(options) > _COMBO_LIST_LIMIT else str(options)
            config = None if len(options) > _COMBO_LIST_LIMIT else spec
            errors.append(
                _error(
                    "value_not_in_list",
                    "Value not in list",
                    f"{name}: '{value}' not in {listed}",
                    {"input_name": name, "input_config": config, "received_value": value},
                )
            )


def _class_errors(prompt: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any] | None:
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return _error(
                "invalid_prompt",
                "Cannot execute because a node is missing the class_type property.",
                f"Node ID '#{node_id}'",
            )
        class_type = node["class_type"]
        if class_type not in object_info:
            title = (node.get("_meta") or {}).get("title", class_type)
            return _error(
                "missing_node_type",
                f"Node '{title}' not found. The custom node may not be installed.",
                f"Node ID '#{node_id}'",
                {"node_id": node_id, "class_type": class_type, "node_title": title},
            )
    return None


def validate_prompt(prompt: Any, object_info: dict[str, Any], image_exists: Any) -> Verdict:
    """Validate an API-format graph the way ComfyUI does."""
    if not isinstance(prompt, dict):
        return Verdict(False, _error("invalid_prompt", "Invalid prompt", "prompt must be an object"))
    class_error = _class_errors(prompt, object_info)
    if class_error is not None:
        return Verdict(False, class_error)
    outputs = [n for n, node in prompt.items() if object_info[node["class_type"]].get("output_node")]
    if not outputs:
        return Verdict(False, _error("prompt_no_outputs", "Prompt has no outputs"))
    validator = _Validator(prompt, object_info, image_exists)
    good: list[str] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            ok, _ = validator.node(output)
        except Exception as exc:  # a broken output node itself
            ok = False
            validator.validated[output] = (
                False,
                [_error("exception_during_validation", "Exception when validating node", str(exc))],
            )
        if ok:
            good.append(output)
            continue
        for node_id, (_, reasons) in validator.validated.items():
            if reasons and node_id in prompt:
                entry = node_errors.setdefault(
                    node_id, {"errors": reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]}
                )
                entry["dependent_outputs"].append(output)
    if not good:
        error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation")
        return Verdict(False, error, node_errors)
    return Verdict(True, None, node_errors, good)
