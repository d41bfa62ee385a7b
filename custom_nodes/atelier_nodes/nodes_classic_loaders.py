# SPDX-License-Identifier: Apache-2.0
"""The LoRA loaders in ComfyUI's classic style (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``).

Used only where ComfyUI lacks the V3 API the pack needs (see :mod:`.entry`); the same nodes as
:mod:`.nodes_v3_loaders`, which a test holds them to.
"""

from __future__ import annotations

from typing import Any

from . import comfy_runtime
from .vocabulary import (
    CATEGORY,
    CLIP_OUT_TIP,
    CLIP_TIP,
    LOCAL_LORA_TIP,
    LORA_LOADER_DESCRIPTION,
    LORA_LOADER_MODEL_ONLY_DESCRIPTION,
    LORA_STRENGTH_LIMIT,
    MODEL_OUT_TIP,
    MODEL_TIP,
    REMOTE_CLIP_TIP,
    REMOTE_LORA_LOADER_DESCRIPTION,
    REMOTE_LORA_TIP,
    STRENGTH_CLIP_TIP,
    STRENGTH_MODEL_TIP,
    TRIGGER_OUT_TIP,
)

InputTypes = dict[str, dict[str, Any]]


def _strength(tooltip: str) -> tuple[str, dict[str, Any]]:
    limit = LORA_STRENGTH_LIMIT
    return "FLOAT", {"default": 1.0, "min": -limit, "max": limit, "step": 0.01, "tooltip": tooltip}


class AtelierLoraLoader:
    """A LoRA Atelier LoRA from ComfyUI's ``loras`` folders, applied to the model and the text encoder."""

    CATEGORY = CATEGORY
    DESCRIPTION = LORA_LOADER_DESCRIPTION
    SEARCH_ALIASES = ["atelier lora", "lora atelier", "trigger word"]
    RETURN_TYPES = ("MODEL", "CLIP", "STRING")
    RETURN_NAMES = ("MODEL", "CLIP", "trigger_word")
    OUTPUT_TOOLTIPS = (MODEL_OUT_TIP, CLIP_OUT_TIP, TRIGGER_OUT_TIP)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": MODEL_TIP}),
                "clip": ("CLIP", {"tooltip": CLIP_TIP}),
                "lora": (comfy_runtime.atelier_lora_entries(), {"tooltip": LOCAL_LORA_TIP}),
                "strength_model": _strength(STRENGTH_MODEL_TIP),
                "strength_clip": _strength(STRENGTH_CLIP_TIP),
            }
        }

    def run(self, model: Any, clip: Any, lora: str, strength_model: float, strength_clip: float) -> tuple[Any, ...]:
        return comfy_runtime.apply_lora(model, clip, lora, strength_model, strength_clip)


class AtelierLoraLoaderModelOnly:
    """The same for the diffusion model alone (Flux LoRAs)."""

    CATEGORY = CATEGORY
    DESCRIPTION = LORA_LOADER_MODEL_ONLY_DESCRIPTION
    SEARCH_ALIASES = ["atelier lora flux"]
    RETURN_TYPES = ("MODEL", "STRING")
    RETURN_NAMES = ("MODEL", "trigger_word")
    OUTPUT_TOOLTIPS = (MODEL_OUT_TIP, TRIGGER_OUT_TIP)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": MODEL_TIP}),
                "lora": (comfy_runtime.atelier_lora_entries(), {"tooltip": LOCAL_LORA_TIP}),
                "strength_model": _strength(STRENGTH_MODEL_TIP),
            }
        }

    def run(self, model: Any, lora: str, strength_model: float) -> tuple[Any, ...]:
        new_model, _clip, trigger = comfy_runtime.apply_lora(model, None, lora, strength_model, 0.0)
        return new_model, trigger


class AtelierRemoteLoraLoader:
    """A LoRA from a LoRA Atelier server, downloaded once into ``models/loras/atelier`` and checked by sha256.

    ``VALIDATE_INPUTS`` takes ``lora``, so ComfyUI leaves that value to it (see the V3 class).
    """

    CATEGORY = CATEGORY
    DESCRIPTION = REMOTE_LORA_LOADER_DESCRIPTION
    SEARCH_ALIASES = ["atelier remote lora", "lora atelier server", "trigger word"]
    RETURN_TYPES = ("MODEL", "CLIP", "STRING")
    RETURN_NAMES = ("MODEL", "CLIP", "trigger_word")
    OUTPUT_TOOLTIPS = (MODEL_OUT_TIP, CLIP_OUT_TIP, TRIGGER_OUT_TIP)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return {
            "required": {
                "model": ("MODEL", {"tooltip": MODEL_TIP}),
                "lora": (comfy_runtime.remote_lora_entries(), {"tooltip": REMOTE_LORA_TIP}),
                "strength_model": _strength(STRENGTH_MODEL_TIP),
                "strength_clip": _strength(STRENGTH_CLIP_TIP),
            },
            "optional": {"clip": ("CLIP", {"tooltip": REMOTE_CLIP_TIP})},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, lora: str) -> bool | str:
        return comfy_runtime.remote_lora_problem(lora)

    def run(
        self, model: Any, lora: str, strength_model: float, strength_clip: float, clip: Any = None
    ) -> tuple[Any, ...]:
        return comfy_runtime.apply_remote_lora(model, clip, lora, strength_model, strength_clip)


LOADER_NODES: tuple[type[Any], ...] = (AtelierLoraLoader, AtelierLoraLoaderModelOnly, AtelierRemoteLoraLoader)
"""The loaders, in menu order."""
