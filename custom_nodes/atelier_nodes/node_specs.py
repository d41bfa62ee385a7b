# SPDX-License-Identifier: Apache-2.0
"""What every node of the pack looks like: ids, inputs, outputs, and which behaviour runs it.

One declarative table serves both entry styles: :mod:`.nodes_v3` turns it into ``io.ComfyNode`` classes,
:mod:`.nodes_v1` into classic ``INPUT_TYPES`` classes. Combo options are named by a *source*
(``"atelier_loras"``, ``"checkpoints"``, ``"loras"``, ``"input_images"``) that the ComfyUI side lists when
ComfyUI asks for the node's inputs.

Parameter markers stand for one request field of a registered template each: ``name`` is the field, the
value input is its default (and what the service replaces), ``min``/``max`` bound numeric fields. At run time a
marker passes its value through (the image marker loads its image, as ComfyUI's Load Image validates its own
file name and cannot take it from a link), so a marked graph runs in ComfyUI as it is.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CATEGORY = "Atelier"
MARKER_CATEGORY = "Atelier/parameters"
INT_LIMIT = 2**53 - 1
"""Bound of integer widgets (the largest integer a browser holds exactly)."""
SEED_MAX = 2**64 - 1
"""ComfyUI's largest seed (KSampler's ``seed`` maximum)."""
FLOAT_LIMIT = 1e9
LORA_STRENGTH_LIMIT = 100.0
"""The strength range of ComfyUI's own LoraLoader."""


class ComboAny(str):
    """Output type ``"COMBO"`` that ComfyUI's prompt validation accepts into any combo input.

    Classic combo inputs declare their options list as their type, so a plain ``"COMBO"`` output would not
    match them (and an options list as output type goes stale when files are added). ComfyUI compares types
    with ``!=`` first and documents ``__ne__`` overrides as supported; this one says "not different" to any
    options list and to ``"COMBO"``. It serialises as the string ``"COMBO"``.
    """

    __slots__ = ()

    def __ne__(self, other: object) -> bool:
        if isinstance(other, list | tuple):
            return False
        if isinstance(other, str):
            return str.__ne__(self, other)
        return True

    __hash__ = str.__hash__


ANY_COMBO = ComboAny("COMBO")


@dataclass(frozen=True)
class InputSpec:
    """One input of a node."""

    id: str
    type: str
    """``MODEL``, ``CLIP``, ``STRING``, ``INT``, ``FLOAT`` or ``COMBO``."""
    default: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    multiline: bool = False
    options: str | None = None
    """For a combo: the source of its options."""
    image_upload: bool = False
    control_after_generate: bool = False
    optional: bool = False
    tooltip: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """One output of a node."""

    id: str
    type: str
    """``MODEL``, ``CLIP``, ``IMAGE``, ``MASK``, ``STRING``, ``INT``, ``FLOAT``, or ``COMBO`` (a value any combo
    input takes)."""
    name: str
    tooltip: str | None = None


@dataclass(frozen=True)
class NodeSpec:
    """One node class of the pack."""

    node_id: str
    display_name: str
    category: str
    description: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    behaviour: str
    """Key of the function in :mod:`.behaviour` that runs it."""
    search_aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class MarkerSpec:
    """How the service reads a marker: its field kind, the input holding the value, whether it is bounded."""

    kind: str
    value_input: str
    bounded: bool


def _strength(id_: str, what: str) -> InputSpec:
    return InputSpec(
        id_,
        "FLOAT",
        default=1.0,
        min=-LORA_STRENGTH_LIMIT,
        max=LORA_STRENGTH_LIMIT,
        step=0.01,
        tooltip=f"How strongly to modify the {what}. This value can be negative.",
    )


_LORA_CHOICE = InputSpec(
    "lora",
    "COMBO",
    options="atelier_loras",
    tooltip="A LoRA trained by LoRA Atelier: <subject>/<version>/<name>, with its trigger word.",
)
_TRIGGER = OutputSpec("trigger_word", "STRING", "trigger_word", "The LoRA's trigger word (empty when it has none).")

LORA_LOADER = NodeSpec(
    node_id="AtelierLoraLoader",
    display_name="Atelier LoRA Loader",
    category=CATEGORY,
    description="Applies a LoRA trained by LoRA Atelier to the model and text encoder, exactly like ComfyUI's "
    "LoraLoader, and outputs the LoRA's trigger word to wire into the prompt.",
    inputs=(
        InputSpec("model", "MODEL", tooltip="The diffusion model the LoRA will be applied to."),
        InputSpec("clip", "CLIP", tooltip="The text encoder the LoRA will be applied to."),
        _LORA_CHOICE,
        _strength("strength_model", "diffusion model"),
        _strength("strength_clip", "text encoder"),
    ),
    outputs=(
        OutputSpec("model", "MODEL", "MODEL", "The modified diffusion model."),
        OutputSpec("clip", "CLIP", "CLIP", "The modified text encoder."),
        _TRIGGER,
    ),
    behaviour="lora",
    search_aliases=("atelier lora", "lora atelier", "trigger word"),
)

LORA_LOADER_MODEL_ONLY = NodeSpec(
    node_id="AtelierLoraLoaderModelOnly",
    display_name="Atelier LoRA Loader (model only)",
    category=CATEGORY,
    description="Applies a LoRA trained by LoRA Atelier to the diffusion model only (Flux LoRAs), and outputs "
    "its trigger word.",
    inputs=(
        InputSpec("model", "MODEL", tooltip="The diffusion model the LoRA will be applied to."),
        _LORA_CHOICE,
        _strength("strength_model", "diffusion model"),
    ),
    outputs=(OutputSpec("model", "MODEL", "MODEL", "The modified diffusion model."), _TRIGGER),
    behaviour="lora_model_only",
    search_aliases=("atelier lora flux",),
)


def _marker(
    node_id: str,
    display_name: str,
    field: str,
    value: InputSpec,
    outputs: tuple[OutputSpec, ...],
    bounds: tuple[InputSpec, InputSpec] | None = None,
    behaviour: str | None = None,
) -> NodeSpec:
    name = InputSpec("name", "STRING", default=field, tooltip="The request field this value stands for.")
    description = InputSpec(
        "description", "STRING", default="", optional=True, tooltip="What the field means (for the API docs)."
    )
    return NodeSpec(
        node_id=node_id,
        display_name=display_name,
        category=MARKER_CATEGORY,
        description=f"Marks a parameter of a LoRA Atelier template: the request field called 'name' sets "
        f"{value.id!r}. In ComfyUI the node "
        + ("loads that image like Load Image." if behaviour == "image" else "passes the value through."),
        inputs=(name, value, *(bounds or ()), description),
        outputs=outputs,
        behaviour=behaviour or ("bounded" if bounds else "pass"),
    )


def _bounds(type_: str, low: float, high: float, limit: float) -> tuple[InputSpec, InputSpec]:
    return (
        InputSpec("min", type_, default=low, min=-limit, max=limit, tooltip="Smallest value a request may set."),
        InputSpec("max", type_, default=high, min=-limit, max=limit, tooltip="Largest value a request may set."),
    )


_FILE_TIP = "File name; pass it to a loader's {0} input."
MARKER_SPECS: tuple[NodeSpec, ...] = (
    _marker(
        "AtelierPromptInput",
        "Atelier Prompt (parameter)",
        "prompt",
        InputSpec("text", "STRING", default="", multiline=True),
        (OutputSpec("text", "STRING", "STRING"),),
    ),
    _marker(
        "AtelierIntInput",
        "Atelier Integer (parameter)",
        "count",
        InputSpec("value", "INT", default=0, min=-INT_LIMIT, max=INT_LIMIT),
        (OutputSpec("value", "INT", "INT"),),
        _bounds("INT", 0, 2**31 - 1, INT_LIMIT),
    ),
    _marker(
        "AtelierFloatInput",
        "Atelier Float (parameter)",
        "strength",
        InputSpec("value", "FLOAT", default=1.0, min=-FLOAT_LIMIT, max=FLOAT_LIMIT, step=0.01),
        (OutputSpec("value", "FLOAT", "FLOAT"),),
        _bounds("FLOAT", 0.0, 100.0, FLOAT_LIMIT),
    ),
    _marker(
        "AtelierSeedInput",
        "Atelier Seed (parameter)",
        "seed",
        InputSpec("seed", "INT", default=0, min=0, max=SEED_MAX, control_after_generate=True),
        (OutputSpec("seed", "INT", "INT"),),
    ),
    _marker(
        "AtelierImageInput",
        "Atelier Image (parameter)",
        "image",
        InputSpec("image", "COMBO", options="input_images", image_upload=True),
        (OutputSpec("image", "IMAGE", "IMAGE"), OutputSpec("mask", "MASK", "MASK")),
        behaviour="image",
    ),
    _marker(
        "AtelierCheckpointInput",
        "Atelier Checkpoint (parameter)",
        "checkpoint",
        InputSpec("ckpt_name", "COMBO", options="checkpoints"),
        (OutputSpec("ckpt_name", "COMBO", "ckpt_name", _FILE_TIP.format("'ckpt_name'")),),
    ),
    _marker(
        "AtelierLoraInput",
        "Atelier LoRA file (parameter)",
        "lora",
        InputSpec("lora_name", "COMBO", options="loras"),
        (OutputSpec("lora_name", "COMBO", "lora_name", _FILE_TIP.format("'lora_name'")),),
    ),
)

NODE_SPECS: tuple[NodeSpec, ...] = (LORA_LOADER, LORA_LOADER_MODEL_ONLY, *MARKER_SPECS)
"""Every node of the pack, in menu order."""

_KINDS = {
    "AtelierPromptInput": "prompt",
    "AtelierIntInput": "int",
    "AtelierFloatInput": "float",
    "AtelierSeedInput": "seed",
    "AtelierImageInput": "image",
    "AtelierCheckpointInput": "checkpoint",
    "AtelierLoraInput": "lora",
}

MARKERS: Mapping[str, MarkerSpec] = {
    spec.node_id: MarkerSpec(_KINDS[spec.node_id], spec.inputs[1].id, spec.behaviour == "bounded")
    for spec in MARKER_SPECS
}
"""Marker class -> how the service reads it (held equal to ``comfy_workflows.registration`` by a test)."""
