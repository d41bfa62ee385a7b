# SPDX-License-Identifier: Apache-2.0
"""What a prompt needs loaded, and what switching to it costs the stand-in.

ComfyUI keeps the model of the last prompt in memory: a prompt with the same checkpoint and LoRA set only samples,
while one with another checkpoint loads it (and re-applies its LoRAs), and one with another LoRA set (other files
or strengths) re-patches the weights. The real server spends that time in the loader nodes and when the sampler
moves the model to the device; the stand-in charges it as one wait before the sampler's first step, with the
figures recorded from a real server (``runs/model_loads.json``, see
:func:`tests.standin.comfyui.recordings.switch_extras`). The loader nodes themselves then take no time of their
own: their time is part of the recorded switch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from comfy_workflows.markers import LORA_LOADER_CLASSES, MARKER_CLASSES, REMOTE_LORA_LOADER_CLASS

#: (class, input) pairs that name the base model's files: the checkpoint, or a split model's parts.
CHECKPOINT_INPUTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("CheckpointLoaderSimple", "ckpt_name"),
        ("CheckpointLoader", "ckpt_name"),
        ("UNETLoader", "unet_name"),
        ("DualCLIPLoader", "clip_name1"),
        ("DualCLIPLoader", "clip_name2"),
        ("CLIPLoader", "clip_name"),
        ("VAELoader", "vae_name"),
    }
)
#: ComfyUI's LoRA loaders and our node pack's.
LORA_LOADERS: frozenset[str] = LORA_LOADER_CLASSES | {"LoraLoader", "LoraLoaderModelOnly", REMOTE_LORA_LOADER_CLASS}
#: Nodes whose own time is part of a recorded switch.
MODEL_LOADERS: frozenset[str] = frozenset({c for c, _ in CHECKPOINT_INPUTS} | LORA_LOADERS)

LoadKind = Literal["checkpoint", "lora"]


@dataclass(frozen=True)
class ModelKey:
    """The model files a prompt loads, and per LoRA loader its literal inputs (file, strengths)."""

    checkpoints: tuple[str, ...]
    loras: tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True)
class LoadCosts:
    """Recorded seconds a switch adds to a prompt (before ``time_scale``)."""

    checkpoint_s: float = 0.0
    lora_s: float = 0.0


@dataclass(frozen=True)
class Load:
    """A switch the stand-in charges."""

    kind: LoadKind
    recorded_s: float


def marker_value(prompt: Mapping[str, Any], value: Any) -> Any:
    """A literal input value, or the value an Atelier parameter marker passes on through a link."""
    if isinstance(value, list) and len(value) == 2 and value[0] in prompt:
        source = prompt[value[0]]
        marker = MARKER_CLASSES.get(str(source.get("class_type")))
        if marker is not None:
            return (source.get("inputs") or {}).get(marker.value_input)
    return value


def model_key(prompt: Mapping[str, Any]) -> ModelKey | None:
    """What ``prompt`` needs loaded; None when it loads no model."""

    def value_of(value: Any) -> Any:
        return marker_value(prompt, value)

    checkpoints: list[str] = []
    loras: list[tuple[tuple[str, str], ...]] = []
    for node in prompt.values():
        class_type = str(node.get("class_type"))
        inputs = node.get("inputs") or {}
        for name in inputs:
            if (class_type, name) in CHECKPOINT_INPUTS:
                checkpoints.append(str(value_of(inputs[name])))
        if class_type in LORA_LOADERS:
            values = {name: value_of(value) for name, value in inputs.items()}
            loras.append(tuple(sorted((k, str(v)) for k, v in values.items() if not isinstance(v, list))))
    if not checkpoints and not loras:
        return None
    return ModelKey(tuple(sorted(checkpoints)), tuple(sorted(loras)))


def load_needed(loaded: ModelKey | None, wanted: ModelKey | None, costs: LoadCosts) -> Load | None:
    """The switch a prompt that wants ``wanted`` makes after ``loaded``: another checkpoint (its LoRAs are applied
    with it), another LoRA set on the same checkpoint, or none."""
    if wanted is None:
        return None
    if loaded is None or loaded.checkpoints != wanted.checkpoints:
        return Load("checkpoint", costs.checkpoint_s)
    if loaded.loras != wanted.loras:
        return Load("lora", costs.lora_s)
    return None
