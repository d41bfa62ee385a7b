# SPDX-License-Identifier: Apache-2.0
"""The LoRA loaders in ComfyUI's typed V3 API, one ``io.ComfyNode`` class each.

*Atelier LoRA Loader* and its model-only twin list the LoRA Atelier files in ComfyUI's own ``loras`` folders;
*Atelier Remote LoRA Loader* lists the LoRAs of a LoRA Atelier server and downloads the one picked (see
:mod:`.remote_loras`). All three apply the LoRA with ComfyUI's own functions and output its trigger word.
"""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_runtime
from .vocabulary import (
    CATEGORY,
    CLIP_OUT_TIP,
    CLIP_TIP,
    LOCAL_LORA_TIP,
    LORA_LOADER,
    LORA_LOADER_DESCRIPTION,
    LORA_LOADER_MODEL_ONLY,
    LORA_LOADER_MODEL_ONLY_DESCRIPTION,
    LORA_STRENGTH_LIMIT,
    MODEL_OUT_TIP,
    MODEL_TIP,
    REMOTE_CLIP_TIP,
    REMOTE_LORA_LOADER,
    REMOTE_LORA_LOADER_DESCRIPTION,
    REMOTE_LORA_TIP,
    STRENGTH_CLIP_TIP,
    STRENGTH_MODEL_TIP,
    TRIGGER_OUT_TIP,
)


def _strength(input_id: str, tooltip: str) -> io.Float.Input:
    limit = LORA_STRENGTH_LIMIT
    return io.Float.Input(input_id, default=1.0, min=-limit, max=limit, step=0.01, tooltip=tooltip)


def _trigger_word() -> io.String.Output:
    return io.String.Output("trigger_word", display_name="trigger_word", tooltip=TRIGGER_OUT_TIP)


class AtelierLoraLoader(io.ComfyNode):
    """A LoRA Atelier LoRA from ComfyUI's ``loras`` folders, applied to the model and the text encoder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=LORA_LOADER,
            display_name="Atelier LoRA Loader",
            category=CATEGORY,
            description=LORA_LOADER_DESCRIPTION,
            search_aliases=["atelier lora", "lora atelier", "trigger word"],
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TIP),
                io.Clip.Input("clip", tooltip=CLIP_TIP),
                io.Combo.Input("lora", options=comfy_runtime.atelier_lora_entries(), tooltip=LOCAL_LORA_TIP),
                _strength("strength_model", STRENGTH_MODEL_TIP),
                _strength("strength_clip", STRENGTH_CLIP_TIP),
            ],
            outputs=[
                io.Model.Output("model", display_name="MODEL", tooltip=MODEL_OUT_TIP),
                io.Clip.Output("clip", display_name="CLIP", tooltip=CLIP_OUT_TIP),
                _trigger_word(),
            ],
        )

    @classmethod
    def execute(
        cls, model: object, clip: object, lora: str, strength_model: float, strength_clip: float
    ) -> io.NodeOutput:
        return io.NodeOutput(*comfy_runtime.apply_lora(model, clip, lora, strength_model, strength_clip))


class AtelierLoraLoaderModelOnly(io.ComfyNode):
    """The same for the diffusion model alone (Flux LoRAs)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=LORA_LOADER_MODEL_ONLY,
            display_name="Atelier LoRA Loader (model only)",
            category=CATEGORY,
            description=LORA_LOADER_MODEL_ONLY_DESCRIPTION,
            search_aliases=["atelier lora flux"],
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TIP),
                io.Combo.Input("lora", options=comfy_runtime.atelier_lora_entries(), tooltip=LOCAL_LORA_TIP),
                _strength("strength_model", STRENGTH_MODEL_TIP),
            ],
            outputs=[io.Model.Output("model", display_name="MODEL", tooltip=MODEL_OUT_TIP), _trigger_word()],
        )

    @classmethod
    def execute(cls, model: object, lora: str, strength_model: float) -> io.NodeOutput:
        new_model, _clip, trigger = comfy_runtime.apply_lora(model, None, lora, strength_model, 0.0)
        return io.NodeOutput(new_model, trigger)


class AtelierRemoteLoraLoader(io.ComfyNode):
    """A LoRA from a LoRA Atelier server, downloaded once into ``models/loras/atelier`` and checked by sha256.

    ``validate_inputs`` takes ``lora``, so ComfyUI leaves that value to it: a LoRA the server no longer lists
    but the cache holds still runs, and a refused API key or an unreachable server is reported on the node
    with the reason instead of "value not in list".
    """

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=REMOTE_LORA_LOADER,
            display_name="Atelier Remote LoRA Loader",
            category=CATEGORY,
            description=REMOTE_LORA_LOADER_DESCRIPTION,
            search_aliases=["atelier remote lora", "lora atelier server", "trigger word"],
            inputs=[
                io.Model.Input("model", tooltip=MODEL_TIP),
                io.Clip.Input("clip", optional=True, tooltip=REMOTE_CLIP_TIP),
                io.Combo.Input("lora", options=comfy_runtime.remote_lora_entries(), tooltip=REMOTE_LORA_TIP),
                _strength("strength_model", STRENGTH_MODEL_TIP),
                _strength("strength_clip", STRENGTH_CLIP_TIP),
            ],
            outputs=[
                io.Model.Output("model", display_name="MODEL", tooltip=MODEL_OUT_TIP),
                io.Clip.Output("clip", display_name="CLIP", tooltip=CLIP_OUT_TIP),
                _trigger_word(),
            ],
        )

    @classmethod
    def validate_inputs(cls, lora: str) -> bool | str:
        return comfy_runtime.remote_lora_problem(lora)

    @classmethod
    def execute(
        cls, model: object, lora: str, strength_model: float, strength_clip: float, clip: object = None
    ) -> io.NodeOutput:
        return io.NodeOutput(*comfy_runtime.apply_remote_lora(model, clip, lora, strength_model, strength_clip))


LOADER_NODES: tuple[type[io.ComfyNode], ...] = (AtelierLoraLoader, AtelierLoraLoaderModelOnly, AtelierRemoteLoraLoader)
"""The loaders, in menu order."""
