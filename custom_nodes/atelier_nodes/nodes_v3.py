# SPDX-License-Identifier: Apache-2.0
"""The nodes in ComfyUI's typed V3 API: ``io.ComfyNode`` classes, a ``ComfyExtension``, ``comfy_entrypoint``.

Imported only where ``comfy_api.latest`` offers what :data:`.entry.V3_NEEDS` lists (see :mod:`.entry`).
Each class is made from its :class:`.node_specs.NodeSpec`; combo options are listed whenever ComfyUI asks
for the schema (``/object_info`` and every prompt validation), so newly published LoRAs show up without a
restart.
"""

from __future__ import annotations

import inspect
from typing import Any

from comfy_api.latest import ComfyExtension, io

from . import behaviour, comfy_runtime
from .node_specs import ANY_COMBO, NODE_SPECS, InputSpec, NodeSpec, OutputSpec

_AnyCombo = io.Custom(ANY_COMBO)
_SCHEMA_FIELDS = frozenset(inspect.signature(io.Schema).parameters)


def _input(spec: InputSpec) -> Any:
    common: dict[str, Any] = {"optional": spec.optional, "tooltip": spec.tooltip}
    if spec.type == "MODEL":
        return io.Model.Input(spec.id, **common)
    if spec.type == "CLIP":
        return io.Clip.Input(spec.id, **common)
    if spec.type == "STRING":
        return io.String.Input(spec.id, default=spec.default, multiline=spec.multiline, **common)
    if spec.type == "INT":
        after = True if spec.control_after_generate else None
        numbers = {"min": spec.min, "max": spec.max, "step": spec.step}
        return io.Int.Input(spec.id, default=spec.default, control_after_generate=after, **numbers, **common)
    if spec.type == "FLOAT":
        return io.Float.Input(spec.id, default=spec.default, min=spec.min, max=spec.max, step=spec.step, **common)
    if spec.type == "COMBO":
        upload = {"upload": io.UploadType.image, "image_folder": io.FolderType.input} if spec.image_upload else {}
        assert spec.options is not None
        return io.Combo.Input(spec.id, options=comfy_runtime.options(spec.options), **upload, **common)
    raise ValueError(f"input {spec.id!r}: unknown type {spec.type!r}")


_OUTPUT_TYPES: dict[str, Any] = {
    "MODEL": io.Model,
    "CLIP": io.Clip,
    "IMAGE": io.Image,
    "MASK": io.Mask,
    "STRING": io.String,
    "INT": io.Int,
    "FLOAT": io.Float,
    "COMBO": _AnyCombo,
}


def _output(spec: OutputSpec) -> Any:
    return _OUTPUT_TYPES[spec.type].Output(id=spec.id, display_name=spec.name, tooltip=spec.tooltip)


def schema(spec: NodeSpec) -> io.Schema:
    """The V3 schema of the node described by ``spec``."""
    fields: dict[str, Any] = {
        "node_id": spec.node_id,
        "display_name": spec.display_name,
        "category": spec.category,
        "description": spec.description,
        "inputs": [_input(item) for item in spec.inputs],
        "outputs": [_output(item) for item in spec.outputs],
    }
    if spec.search_aliases and "search_aliases" in _SCHEMA_FIELDS:  # a newer Schema field
        fields["search_aliases"] = list(spec.search_aliases)
    return io.Schema(**fields)


def node_class(spec: NodeSpec) -> type[io.ComfyNode]:
    """The ``io.ComfyNode`` class of the node described by ``spec``."""

    class Node(io.ComfyNode):
        @classmethod
        def define_schema(cls) -> io.Schema:
            return schema(spec)

        @classmethod
        def execute(cls, **values: Any) -> io.NodeOutput:
            return io.NodeOutput(*behaviour.run(spec, values))

    made: type[io.ComfyNode] = _with_image_checks(Node) if spec.behaviour == "image" else Node
    made.__name__ = made.__qualname__ = spec.node_id
    made.__doc__ = spec.description
    return made


def _with_image_checks(base: type[io.ComfyNode]) -> type[io.ComfyNode]:
    """The image marker checks its file and notices content changes as ComfyUI's Load Image does."""

    class ImageNode(base):
        @classmethod
        def fingerprint_inputs(cls, image: str, **_: Any) -> Any:
            return comfy_runtime.image_fingerprint(image)

        @classmethod
        def validate_inputs(cls, image: str) -> bool | str:
            return comfy_runtime.image_problem(image)

    return ImageNode


NODE_CLASSES: tuple[type[io.ComfyNode], ...] = tuple(node_class(spec) for spec in NODE_SPECS)


class AtelierExtension(ComfyExtension):
    """The LoRA Atelier node pack."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """Every node of the pack."""
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> AtelierExtension:
    """ComfyUI's V3 entry point: the pack's extension."""
    return AtelierExtension()
