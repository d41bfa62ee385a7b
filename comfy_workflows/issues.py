"""Validation issues: what is wrong, where (node, input, request field), in plain words."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class IssueKind(StrEnum):
    """Why a graph would fail. Values equal ComfyUI's ``/prompt`` error ``type`` where ComfyUI has one."""

    UNKNOWN_CLASS = "missing_node_type"
    MISSING_INPUT = "required_input_missing"
    VALUE_NOT_IN_LIST = "value_not_in_list"
    BELOW_MIN = "value_smaller_than_min"
    ABOVE_MAX = "value_bigger_than_max"
    WRONG_TYPE = "invalid_input_type"
    BAD_LINK = "bad_linked_input"
    TYPE_MISMATCH = "return_type_mismatch"
    NO_OUTPUTS = "prompt_no_outputs"
    LINK_TO_MISSING_NODE = "link_to_missing_node"
    """ComfyUI reports this as ``exception_during_inner_validation`` (a KeyError)."""
    LINK_TO_MISSING_OUTPUT = "link_to_missing_output"
    CYCLE = "dependency_cycle"
    MALFORMED = "malformed_workflow"
    CLASS_NOT_ALLOWED = "node_class_not_allowed"
    REMOTE_URL = "remote_url_not_allowed"
    FILE_PATH = "file_path_not_allowed"


@dataclass(frozen=True)
class ValidationIssue:
    """One problem found in a graph."""

    kind: IssueKind
    message: str
    """Plain words, e.g. "checkpoint 'x.safetensors' is not offered by the backend; offered: [...]"."""
    node_id: str | None = None
    class_type: str | None = None
    input_name: str | None = None
    field: str | None = None
    """The request field that supplied the value (from the template's field map), when known."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``kind`` as its string value)."""
        data = asdict(self)
        data["kind"] = self.kind.value
        return data
