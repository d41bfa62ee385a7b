"""Read-only, typed access to a backend's ``/object_info`` answer.

Facts about the format (ComfyUI v0.33.0): each class has ``input`` with ``required``/``optional``/``hidden``
sections, ``input_order`` giving the slot order, ``output`` (type names), ``output_name`` and ``output_node``.
An input spec is ``[type, options?]`` where ``type`` is a type name (``"INT"``, ``"MODEL"``, a comma-separated
union, or ``"*"``), or a combo in one of two encodings: a plain list of choices (``[["a", "b"], {...}]``) or
``["COMBO", {"options": ["a", "b"], ...}]``. A combo output type is reported as a list.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
"""Input types the graph editor shows as widgets (unless ``forceInput`` is set)."""

UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "file_upload")
"""Combo options that mark a list of uploaded files, which changes after ``/object_info`` was fetched."""


@dataclass(frozen=True)
class InputDef:
    """One declared input of a node class."""

    name: str
    type: str
    """The type name; ``"COMBO"`` for combos of either encoding."""
    config: Mapping[str, Any]
    required: bool
    options: tuple[Any, ...] | None = None
    """The offered values of a combo, else None."""
    raw: Any = None
    """The spec exactly as ``/object_info`` has it."""

    @property
    def is_widget(self) -> bool:
        """Whether the editor shows this input as a widget (a value) rather than a socket (a link)."""
        return self.type in WIDGET_TYPES and not self.config.get("forceInput", False)

    @property
    def is_upload_list(self) -> bool:
        """Whether this combo lists uploaded files (its offered values go stale; the node checks them itself)."""
        return any(self.config.get(flag) for flag in UPLOAD_FLAGS)

    @property
    def has_control_after_generate(self) -> bool:
        """Whether the editor adds a "control after generate" widget value right after this one."""
        return bool(self.config.get("control_after_generate"))

    def offers(self, value: Any) -> bool:
        """Whether the combo offers ``value``. A LoRA list may hold thousands of files: membership in a set,
        made on first use, takes 0.07 us where scanning the tuple of 5,000 names took 41 us (micro-benchmark)."""
        offered = self._offered_set
        if offered is None:
            return value in (self.options or ())
        try:
            return value in offered
        except TypeError:  # an unhashable value (from a hostile graph): compared the slow way
            return value in (self.options or ())

    @functools.cached_property
    def _offered_set(self) -> frozenset[Any] | None:
        try:
            return frozenset(self.options or ())
        except TypeError:  # an option that cannot be hashed: the tuple is scanned instead
            return None


@dataclass(frozen=True)
class NodeDef:
    """One node class as ``/object_info`` describes it."""

    class_type: str
    display_name: str
    inputs: tuple[InputDef, ...]
    """Required then optional inputs, each in ``input_order``; hidden inputs are left out."""
    outputs: tuple[str, ...]
    """Output type names in slot order (``"COMBO"`` for a combo output)."""
    output_names: tuple[str, ...]
    output_node: bool

    def input(self, name: str) -> InputDef | None:
        """The declared input called ``name``, or None."""
        for item in self.inputs:
            if item.name == name:
                return item
        return None


def parse_input(name: str, spec: Sequence[Any], required: bool) -> InputDef:
    """Turn one ``[type, options?]`` input spec into an :class:`InputDef`."""
    head = spec[0] if spec else "*"
    config = spec[1] if len(spec) > 1 and isinstance(spec[1], Mapping) else {}
    if isinstance(head, list | tuple):
        return InputDef(name, "COMBO", config, required, tuple(head), spec)
    if head == "COMBO":
        return InputDef(name, "COMBO", config, required, tuple(config.get("options", ())), spec)
    return InputDef(name, str(head), config, required, None, spec)


def _ordered_names(section: Mapping[str, Any], order: Sequence[str] | None) -> list[str]:
    names = [n for n in (order or ()) if n in section]
    return names + [n for n in section if n not in names]


def parse_node(class_type: str, raw: Mapping[str, Any]) -> NodeDef:
    """Turn one class entry of ``/object_info`` into a :class:`NodeDef`."""
    sections = raw.get("input", {})
    order = raw.get("input_order", {})
    inputs: list[InputDef] = []
    for section_name, required in (("required", True), ("optional", False)):
        section = sections.get(section_name) or {}
        for name in _ordered_names(section, order.get(section_name)):
            inputs.append(parse_input(name, section[name], required))
    outputs = tuple("COMBO" if isinstance(t, list | tuple) else str(t) for t in raw.get("output", ()))
    names = tuple(raw.get("output_name") or outputs)
    return NodeDef(
        class_type=class_type,
        display_name=raw.get("display_name") or class_type,
        inputs=tuple(inputs),
        outputs=outputs,
        output_names=names,
        output_node=bool(raw.get("output_node", False)),
    )


class ObjectInfo:
    """A backend's ``/object_info`` with parsed node classes, parsed once each on first use.

    Build one per fetched ``/object_info`` and reuse it; the raw mapping must not change afterwards.
    """

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self._parsed: dict[str, NodeDef] = {}

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.raw

    def node(self, class_type: str) -> NodeDef | None:
        """The class called ``class_type``, or None where the backend does not have it."""
        parsed = self._parsed.get(class_type)
        if parsed is None:
            raw = self.raw.get(class_type)
            if not isinstance(raw, Mapping):
                return None
            parsed = self._parsed[class_type] = parse_node(class_type, raw)
        return parsed

    def offered(self, class_type: str, input_name: str) -> tuple[Any, ...]:
        """The values a combo input offers (e.g. checkpoint or LoRA file names); empty if none or no combo."""
        node = self.node(class_type)
        item = node.input(input_name) if node else None
        return (item.options or ()) if item else ()


def as_object_info(value: ObjectInfo | Mapping[str, Any]) -> ObjectInfo:
    """Wrap a raw ``/object_info`` mapping (or pass an :class:`ObjectInfo` through)."""
    return value if isinstance(value, ObjectInfo) else ObjectInfo(value)
