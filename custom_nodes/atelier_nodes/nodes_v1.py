# SPDX-License-Identifier: Apache-2.0
"""The same nodes in ComfyUI's classic style (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``).

Used only where ComfyUI lacks the V3 API this pack needs (see :mod:`.entry`); the classes are made from the
same :class:`.node_specs.NodeSpec` table as the V3 ones, so both styles offer identical nodes.
"""

from __future__ import annotations

from typing import Any

from . import behaviour, comfy_runtime
from .node_specs import ANY_COMBO, NODE_SPECS, InputSpec, NodeSpec


def input_spec(item: InputSpec) -> tuple[Any, dict[str, Any]]:
    """The classic ``(type, options)`` pair of one input; a combo's type is its list of choices."""
    config = {
        "default": item.default,
        "min": item.min,
        "max": item.max,
        "step": item.step,
        "multiline": item.multiline or None,
        "tooltip": item.tooltip,
        "control_after_generate": item.control_after_generate or None,
        "image_upload": item.image_upload or None,
    }
    config = {key: value for key, value in config.items() if value is not None}
    if item.type == "COMBO":
        assert item.options is not None
        return comfy_runtime.options(item.options), config
    return item.type, config


def input_types(spec: NodeSpec) -> dict[str, dict[str, Any]]:
    """The classic ``INPUT_TYPES()`` answer of the node described by ``spec``."""
    sections: dict[str, dict[str, Any]] = {"required": {}}
    for item in spec.inputs:
        sections.setdefault("optional" if item.optional else "required", {})[item.id] = input_spec(item)
    return sections


def node_class(spec: NodeSpec) -> type[Any]:
    """The classic node class of the node described by ``spec``."""

    class Node:
        CATEGORY = spec.category
        DESCRIPTION = spec.description
        SEARCH_ALIASES = list(spec.search_aliases)
        RETURN_TYPES = tuple(ANY_COMBO if out.type == "COMBO" else out.type for out in spec.outputs)
        RETURN_NAMES = tuple(out.name for out in spec.outputs)
        OUTPUT_TOOLTIPS = tuple(out.tooltip for out in spec.outputs)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, dict[str, Any]]:
            return input_types(spec)

        def run(self, **values: Any) -> tuple[Any, ...]:
            return behaviour.run(spec, values)

    made: type[Any] = _with_image_checks(Node) if spec.behaviour == "image" else Node
    made.__name__ = made.__qualname__ = spec.node_id
    made.__doc__ = spec.description
    return made


def _with_image_checks(base: type[Any]) -> type[Any]:
    """The image marker checks its file and notices content changes as ComfyUI's Load Image does."""

    class ImageNode(base):
        @classmethod
        def IS_CHANGED(cls, image: str, **_: Any) -> Any:
            return comfy_runtime.image_fingerprint(image)

        @classmethod
        def VALIDATE_INPUTS(cls, image: str) -> bool | str:
            return comfy_runtime.image_problem(image)

    return ImageNode


NODE_CLASS_MAPPINGS: dict[str, type[Any]] = {spec.node_id: node_class(spec) for spec in NODE_SPECS}
"""Node id -> class, for ComfyUI's classic loader."""

NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {spec.node_id: spec.display_name for spec in NODE_SPECS}
"""Node id -> the name the editor shows."""
