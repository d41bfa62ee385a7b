# SPDX-License-Identifier: Apache-2.0
"""The parameter markers in ComfyUI's typed V3 API, one ``io.ComfyNode`` class each.

A marker stands for one request field of a registered template: ``name`` is the field, the value input is its
default (and what the service replaces), ``min``/``max`` bound numeric fields, ``description`` documents it. In
ComfyUI a marker passes its value through (numeric ones check their own bounds first), so a marked workflow runs
as it is; the image marker loads its image itself, since ComfyUI's Load Image checks its file name before a run
and cannot take it from a link. Combo options are listed whenever ComfyUI asks for a schema, so new files show
up without a restart.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from . import comfy_runtime
from .behaviour import check_bounds
from .vocabulary import (
    ANY_COMBO,
    CHECKPOINT_MARKER,
    CHOICE_MARKER,
    CHOICE_TIP,
    FIELD_DESCRIPTION_TIP,
    FIELD_NAME_TIP,
    FLOAT_LIMIT,
    FLOAT_MARKER,
    IMAGE_MARKER,
    INT_LIMIT,
    INT_MARKER,
    LORA_MARKER,
    MARKER_CATEGORY,
    MAX_TIP,
    MIN_TIP,
    PROMPT_MARKER,
    SEED_MARKER,
    SEED_MAX,
    file_tip,
    marker_description,
)

AnyCombo = io.Custom(ANY_COMBO)
"""A value any dropdown input takes once it is turned into a socket."""


def _field_name(default: str) -> io.String.Input:
    return io.String.Input("name", default=default, tooltip=FIELD_NAME_TIP)


def _field_description() -> io.String.Input:
    return io.String.Input("description", default="", optional=True, tooltip=FIELD_DESCRIPTION_TIP)


class AtelierPromptInput(io.ComfyNode):
    """A text field (a prompt)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=PROMPT_MARKER,
            display_name="Atelier Prompt (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("text"),
            inputs=[_field_name("prompt"), io.String.Input("text", default="", multiline=True), _field_description()],
            outputs=[io.String.Output("text", display_name="STRING")],
        )

    @classmethod
    def execute(cls, name: str, text: str, description: str = "") -> io.NodeOutput:
        return io.NodeOutput(text)


class AtelierIntInput(io.ComfyNode):
    """A whole-number field within ``[min, max]``."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=INT_MARKER,
            display_name="Atelier Integer (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("value"),
            inputs=[
                _field_name("count"),
                io.Int.Input("value", default=0, min=-INT_LIMIT, max=INT_LIMIT),
                io.Int.Input("min", default=0, min=-INT_LIMIT, max=INT_LIMIT, tooltip=MIN_TIP),
                io.Int.Input("max", default=2**31 - 1, min=-INT_LIMIT, max=INT_LIMIT, tooltip=MAX_TIP),
                _field_description(),
            ],
            outputs=[io.Int.Output("value", display_name="INT")],
        )

    @classmethod
    def execute(cls, name: str, value: int, min: int, max: int, description: str = "") -> io.NodeOutput:
        check_bounds(INT_MARKER, name, value, min, max)
        return io.NodeOutput(value)


class AtelierFloatInput(io.ComfyNode):
    """A number field within ``[min, max]``."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=FLOAT_MARKER,
            display_name="Atelier Float (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("value"),
            inputs=[
                _field_name("strength"),
                io.Float.Input("value", default=1.0, min=-FLOAT_LIMIT, max=FLOAT_LIMIT, step=0.01),
                io.Float.Input("min", default=0.0, min=-FLOAT_LIMIT, max=FLOAT_LIMIT, tooltip=MIN_TIP),
                io.Float.Input("max", default=100.0, min=-FLOAT_LIMIT, max=FLOAT_LIMIT, tooltip=MAX_TIP),
                _field_description(),
            ],
            outputs=[io.Float.Output("value", display_name="FLOAT")],
        )

    @classmethod
    def execute(cls, name: str, value: float, min: float, max: float, description: str = "") -> io.NodeOutput:
        check_bounds(FLOAT_MARKER, name, value, min, max)
        return io.NodeOutput(value)


class AtelierSeedInput(io.ComfyNode):
    """A noise seed (a random one when a request leaves it out)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=SEED_MARKER,
            display_name="Atelier Seed (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("seed"),
            inputs=[
                _field_name("seed"),
                io.Int.Input("seed", default=0, min=0, max=SEED_MAX, control_after_generate=True),
                _field_description(),
            ],
            outputs=[io.Int.Output("seed", display_name="INT")],
        )

    @classmethod
    def execute(cls, name: str, seed: int, description: str = "") -> io.NodeOutput:
        return io.NodeOutput(seed)


class AtelierImageInput(io.ComfyNode):
    """An uploaded image, loaded like Load Image (it replaces a Load Image node)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=IMAGE_MARKER,
            display_name="Atelier Image (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("image", loads_image=True),
            inputs=[
                _field_name("image"),
                io.Combo.Input(
                    "image",
                    options=comfy_runtime.input_images(),
                    upload=io.UploadType.image,
                    image_folder=io.FolderType.input,
                ),
                _field_description(),
            ],
            outputs=[io.Image.Output("image", display_name="IMAGE"), io.Mask.Output("mask", display_name="MASK")],
        )

    @classmethod
    def execute(cls, name: str, image: str, description: str = "") -> io.NodeOutput:
        return io.NodeOutput(*comfy_runtime.load_image(image))

    @classmethod
    def fingerprint_inputs(cls, image: str, **_: Any) -> Any:
        return comfy_runtime.image_fingerprint(image)

    @classmethod
    def validate_inputs(cls, image: str) -> bool | str:
        return comfy_runtime.image_problem(image)


class AtelierCheckpointInput(io.ComfyNode):
    """A checkpoint file name, for a checkpoint loader's ``ckpt_name``."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=CHECKPOINT_MARKER,
            display_name="Atelier Checkpoint (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("ckpt_name"),
            inputs=[
                _field_name("checkpoint"),
                io.Combo.Input("ckpt_name", options=comfy_runtime.folder_files("checkpoints")),
                _field_description(),
            ],
            outputs=[AnyCombo.Output("ckpt_name", display_name="ckpt_name", tooltip=file_tip("ckpt_name"))],
        )

    @classmethod
    def execute(cls, name: str, ckpt_name: str, description: str = "") -> io.NodeOutput:
        return io.NodeOutput(ckpt_name)


class AtelierLoraInput(io.ComfyNode):
    """A LoRA file name, for a LoRA loader's ``lora_name``."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=LORA_MARKER,
            display_name="Atelier LoRA file (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("lora_name"),
            inputs=[
                _field_name("lora"),
                io.Combo.Input("lora_name", options=comfy_runtime.folder_files("loras")),
                _field_description(),
            ],
            outputs=[AnyCombo.Output("lora_name", display_name="lora_name", tooltip=file_tip("lora_name"))],
        )

    @classmethod
    def execute(cls, name: str, lora_name: str, description: str = "") -> io.NodeOutput:
        return io.NodeOutput(lora_name)


class AtelierChoiceInput(io.ComfyNode):
    """One option of a dropdown such as a sampler's ``sampler_name`` or ``scheduler``.

    The value is typed, not picked: the marker cannot know the options of the dropdown it feeds. The service
    checks a request's value against that dropdown's options before anything is queued.
    """

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=CHOICE_MARKER,
            display_name="Atelier Choice (parameter)",
            category=MARKER_CATEGORY,
            description=marker_description("value"),
            inputs=[
                _field_name("choice"),
                io.String.Input("value", default="", tooltip=CHOICE_TIP),
                _field_description(),
            ],
            outputs=[AnyCombo.Output("value", display_name="value", tooltip=CHOICE_TIP)],
        )

    @classmethod
    def execute(cls, name: str, value: str, description: str = "") -> io.NodeOutput:
        return io.NodeOutput(value)


MARKER_NODES: tuple[type[io.ComfyNode], ...] = (
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
