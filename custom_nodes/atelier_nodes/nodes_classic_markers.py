# SPDX-License-Identifier: Apache-2.0
"""The parameter markers in ComfyUI's classic style (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``).

Used only where ComfyUI lacks the V3 API the pack needs (see :mod:`.entry`); the same nodes as
:mod:`.nodes_v3_markers` (read that module for what a marker is), which a test holds them to.
"""

from __future__ import annotations

from typing import Any

from . import comfy_runtime
from .behaviour import check_bounds
from .vocabulary import (
    ANY_COMBO,
    CHOICE_TIP,
    FIELD_DESCRIPTION_TIP,
    FIELD_NAME_TIP,
    FLOAT_LIMIT,
    FLOAT_MARKER,
    INT_LIMIT,
    INT_MARKER,
    MARKER_CATEGORY,
    MAX_TIP,
    MIN_TIP,
    SEED_MAX,
    file_tip,
    marker_description,
)

InputTypes = dict[str, dict[str, Any]]


def _inputs(
    field: str, value_id: str, value: tuple[Any, dict[str, Any]], **bounds: tuple[Any, dict[str, Any]]
) -> InputTypes:
    """``name`` (defaulting to ``field``), the value input, ``min``/``max`` where given, then ``description``."""
    name = ("STRING", {"default": field, "multiline": False, "tooltip": FIELD_NAME_TIP})
    description = ("STRING", {"default": "", "multiline": False, "tooltip": FIELD_DESCRIPTION_TIP})
    return {
        "required": {"name": name, value_id: value, **bounds},
        "optional": {"description": description},
    }


class AtelierPromptInput:
    """A text field (a prompt)."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("text")
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("STRING",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return _inputs("prompt", "text", ("STRING", {"default": "", "multiline": True}))

    def run(self, name: str, text: str, description: str = "") -> tuple[str]:
        return (text,)


class AtelierIntInput:
    """A whole-number field within ``[min, max]``."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("value")
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        limits = {"min": -INT_LIMIT, "max": INT_LIMIT}
        return _inputs(
            "count",
            "value",
            ("INT", {"default": 0, **limits}),
            min=("INT", {"default": 0, **limits, "tooltip": MIN_TIP}),
            max=("INT", {"default": 2**31 - 1, **limits, "tooltip": MAX_TIP}),
        )

    def run(self, name: str, value: int, min: int, max: int, description: str = "") -> tuple[int]:
        check_bounds(INT_MARKER, name, value, min, max)
        return (value,)


class AtelierFloatInput:
    """A number field within ``[min, max]``."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("value")
    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("FLOAT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        limits = {"min": -FLOAT_LIMIT, "max": FLOAT_LIMIT}
        return _inputs(
            "strength",
            "value",
            ("FLOAT", {"default": 1.0, **limits, "step": 0.01}),
            min=("FLOAT", {"default": 0.0, **limits, "tooltip": MIN_TIP}),
            max=("FLOAT", {"default": 100.0, **limits, "tooltip": MAX_TIP}),
        )

    def run(self, name: str, value: float, min: float, max: float, description: str = "") -> tuple[float]:
        check_bounds(FLOAT_MARKER, name, value, min, max)
        return (value,)


class AtelierSeedInput:
    """A noise seed (a random one when a request leaves it out)."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("seed")
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("INT",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return _inputs(
            "seed", "seed", ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True})
        )

    def run(self, name: str, seed: int, description: str = "") -> tuple[int]:
        return (seed,)


class AtelierImageInput:
    """An uploaded image, loaded like Load Image (it replaces a Load Image node)."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("image", loads_image=True)
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("IMAGE", "MASK")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return _inputs(
            "image", "image", (comfy_runtime.input_images(), {"image_upload": True, "image_folder": "input"})
        )

    def run(self, name: str, image: str, description: str = "") -> tuple[Any, Any]:
        return comfy_runtime.load_image(image)

    @classmethod
    def IS_CHANGED(cls, image: str, **_: Any) -> Any:
        return comfy_runtime.image_fingerprint(image)

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:
        return comfy_runtime.image_problem(image)


class AtelierCheckpointInput:
    """A checkpoint file name, for a checkpoint loader's ``ckpt_name``."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("ckpt_name")
    RETURN_TYPES = (ANY_COMBO,)
    RETURN_NAMES = ("ckpt_name",)
    OUTPUT_TOOLTIPS = (file_tip("ckpt_name"),)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return _inputs("checkpoint", "ckpt_name", (comfy_runtime.folder_files("checkpoints"), {}))

    def run(self, name: str, ckpt_name: str, description: str = "") -> tuple[str]:
        return (ckpt_name,)


class AtelierLoraInput:
    """A LoRA file name, for a LoRA loader's ``lora_name``."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("lora_name")
    RETURN_TYPES = (ANY_COMBO,)
    RETURN_NAMES = ("lora_name",)
    OUTPUT_TOOLTIPS = (file_tip("lora_name"),)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return _inputs("lora", "lora_name", (comfy_runtime.folder_files("loras"), {}))

    def run(self, name: str, lora_name: str, description: str = "") -> tuple[str]:
        return (lora_name,)


class AtelierChoiceInput:
    """One option of a dropdown such as a sampler's ``sampler_name`` or ``scheduler`` (typed, not picked)."""

    CATEGORY = MARKER_CATEGORY
    DESCRIPTION = marker_description("value")
    RETURN_TYPES = (ANY_COMBO,)
    RETURN_NAMES = ("value",)
    OUTPUT_TOOLTIPS = (CHOICE_TIP,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls) -> InputTypes:
        return _inputs("choice", "value", ("STRING", {"default": "", "multiline": False, "tooltip": CHOICE_TIP}))

    def run(self, name: str, value: str, description: str = "") -> tuple[str]:
        return (value,)


MARKER_NODES: tuple[type[Any], ...] = (
    AtelierPromptInput,
    AtelierIntInput,
    AtelierFloatInput,
    AtelierSeedInput,
    AtelierImageInput,
    AtelierCheckpointInput,
    AtelierLoraInput,
    AtelierChoiceInput,
)
"""The markers, in menu order."""
