# SPDX-License-Identifier: Apache-2.0
"""The pack's words and numbers, shared by the V3 classes and the classic ones.

Node ids, menu categories, widget limits, the texts both styles show, the ``COMBO`` output type that feeds any
dropdown, and :data:`MARKERS` (how the service reads each marker; held equal to
``comfy_workflows.markers.MARKER_CLASSES`` by a test). The node classes themselves live in
:mod:`.nodes_v3_loaders`, :mod:`.nodes_v3_markers` (typed V3 API) and :mod:`.nodes_classic_loaders`,
:mod:`.nodes_classic_markers` (classic API); a test holds the two styles to the same ``/object_info``.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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

# Node ids, in menu order.
LORA_LOADER = "AtelierLoraLoader"
LORA_LOADER_MODEL_ONLY = "AtelierLoraLoaderModelOnly"
REMOTE_LORA_LOADER = "AtelierRemoteLoraLoader"
PROMPT_MARKER = "AtelierPromptInput"
INT_MARKER = "AtelierIntInput"
FLOAT_MARKER = "AtelierFloatInput"
SEED_MARKER = "AtelierSeedInput"
IMAGE_MARKER = "AtelierImageInput"
CHECKPOINT_MARKER = "AtelierCheckpointInput"
LORA_MARKER = "AtelierLoraInput"
CHOICE_MARKER = "AtelierChoiceInput"

LOADER_IDS = (LORA_LOADER, LORA_LOADER_MODEL_ONLY, REMOTE_LORA_LOADER)
MARKER_IDS = (
    PROMPT_MARKER,
    INT_MARKER,
    FLOAT_MARKER,
    SEED_MARKER,
    IMAGE_MARKER,
    CHECKPOINT_MARKER,
    LORA_MARKER,
    CHOICE_MARKER,
)
NODE_IDS = (*LOADER_IDS, *MARKER_IDS)
"""Every node of the pack, in menu order."""


@dataclass(frozen=True)
class MarkerReading:
    """How the service reads a marker: its field kind, the input holding the value, whether it has min/max."""

    kind: str
    value_input: str
    bounded: bool


MARKERS: Mapping[str, MarkerReading] = {
    PROMPT_MARKER: MarkerReading("prompt", "text", False),
    INT_MARKER: MarkerReading("int", "value", True),
    FLOAT_MARKER: MarkerReading("float", "value", True),
    SEED_MARKER: MarkerReading("seed", "seed", False),
    IMAGE_MARKER: MarkerReading("image", "image", False),
    CHECKPOINT_MARKER: MarkerReading("checkpoint", "ckpt_name", False),
    LORA_MARKER: MarkerReading("lora", "lora_name", False),
    CHOICE_MARKER: MarkerReading("choice", "value", False),
}
"""Marker class -> how the service reads it."""

# Texts both styles show.
MODEL_TIP = "The diffusion model the LoRA will be applied to."
CLIP_TIP = "The text encoder the LoRA will be applied to."
REMOTE_CLIP_TIP = "The text encoder the LoRA will be applied to (leave it unconnected for a model-only LoRA)."
STRENGTH_MODEL_TIP = "How strongly to modify the diffusion model. This value can be negative."
STRENGTH_CLIP_TIP = "How strongly to modify the text encoder. This value can be negative."
LOCAL_LORA_TIP = "A LoRA trained by LoRA Atelier: <subject>/<version>/<name>, with its trigger word."
REMOTE_LORA_TIP = (
    "A LoRA on your LoRA Atelier server: <subject>/<name>/v<version>, with its trigger word. Downloaded once into "
    "models/loras/atelier, checked against its sha256, then used from there (also offline)."
)
MODEL_OUT_TIP = "The modified diffusion model."
CLIP_OUT_TIP = "The modified text encoder."
TRIGGER_OUT_TIP = "The LoRA's trigger word (empty when it has none)."
FIELD_NAME_TIP = "The request field this value stands for."
FIELD_DESCRIPTION_TIP = "What the field means (for the API docs)."
MIN_TIP = "Smallest value a request may set."
MAX_TIP = "Largest value a request may set."
CHOICE_TIP = "One of the options of the dropdown this feeds (a sampler, a scheduler...)."


def file_tip(input_name: str) -> str:
    """The tooltip of a file-name marker's output."""
    return f"File name; pass it to a loader's {input_name!r} input."


def marker_description(value_input: str, loads_image: bool = False) -> str:
    """The node description of a marker whose value input is ``value_input``."""
    runs = "loads that image like Load Image." if loads_image else "passes the value through."
    return (
        f"Marks a parameter of a LoRA Atelier template: the request field called 'name' sets {value_input!r}. "
        f"In ComfyUI the node {runs}"
    )


LORA_LOADER_DESCRIPTION = (
    "Applies a LoRA trained by LoRA Atelier to the model and text encoder, exactly like ComfyUI's LoraLoader, "
    "and outputs the LoRA's trigger word to wire into the prompt."
)
LORA_LOADER_MODEL_ONLY_DESCRIPTION = (
    "Applies a LoRA trained by LoRA Atelier to the diffusion model only (Flux LoRAs), and outputs its trigger word."
)
REMOTE_LORA_LOADER_DESCRIPTION = (
    "Applies a LoRA from your LoRA Atelier server (set its address and API key in the Atelier sidebar, or "
    "ATELIER_URL and ATELIER_API_KEY), downloading it once, and outputs its trigger word."
)
