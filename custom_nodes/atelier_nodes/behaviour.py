# SPDX-License-Identifier: Apache-2.0
"""What the nodes do when ComfyUI runs them; shared by both entry styles.

Markers pass their value through (numeric ones check it against their own ``min``/``max`` first); the image
marker and the LoRA loaders hand over to :mod:`.comfy_runtime`, which uses ComfyUI's own loading functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import comfy_runtime
from .node_specs import NodeSpec


def check_bounds(node_id: str, name: str, value: float, low: float, high: float) -> None:
    """Raise ``ValueError`` when ``low > high`` or ``value`` lies outside ``[low, high]``."""
    if low > high:
        raise ValueError(f"{node_id} {name!r}: min {low} is larger than max {high}")
    if not low <= value <= high:
        raise ValueError(f"{node_id} {name!r}: value {value} is outside [{low}, {high}]")


def _lora(values: Mapping[str, Any]) -> tuple[Any, ...]:
    return comfy_runtime.apply_lora(
        values["model"], values["clip"], values["lora"], values["strength_model"], values["strength_clip"]
    )


def _lora_model_only(values: Mapping[str, Any]) -> tuple[Any, ...]:
    model, _clip, trigger = comfy_runtime.apply_lora(
        values["model"], None, values["lora"], values["strength_model"], 0.0
    )
    return model, trigger


def run(spec: NodeSpec, values: Mapping[str, Any]) -> tuple[Any, ...]:
    """The outputs of the node described by ``spec`` for input ``values`` (by input id)."""
    if spec.behaviour == "lora":
        return _lora(values)
    if spec.behaviour == "lora_model_only":
        return _lora_model_only(values)
    if spec.behaviour == "image":
        return comfy_runtime.load_image(values["image"])
    value_id = spec.inputs[1].id
    value = values[value_id]
    if spec.behaviour == "bounded":
        check_bounds(spec.node_id, str(values.get("name", "")), value, values["min"], values["max"])
    elif spec.behaviour != "pass":
        raise ValueError(f"{spec.node_id}: unknown behaviour {spec.behaviour!r}")
    return (value,)
