"""Text to image: prompt -> (LoRA stack) -> empty latent -> KSampler -> VAE decode -> SaveImage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field as ModelField

from comfy_workflows.graph import Field, GraphBuilder
from comfy_workflows.templates import _stages
from comfy_workflows.templates.base import BaseModelSpec, BuiltWorkflow, GenerationRequest, LoraRef

NAME = "txt2img"
DESCRIPTION = "Generate images from a text prompt, optionally with a stack of LoRAs."
EXAMPLE = {"template": NAME, "base_model": "sd15-base", "prompt": "a watercolor fox in a birch forest"}


class Txt2ImgRequest(GenerationRequest):
    """A text-to-image request."""

    template: Literal["txt2img"] = ModelField(default="txt2img", description="Template name: txt2img.")


def build(
    request: Txt2ImgRequest,
    model: BaseModelSpec,
    *,
    loras: Sequence[LoraRef] = (),
    filename_prefix: str,
    seed_source: _stages.SeedSource | None = None,
) -> BuiltWorkflow:
    """Build the txt2img graph for ``model``.

    ``loras`` are the request's LoRAs resolved to backend file names, in the same order as ``request.loras``.
    ``filename_prefix`` names the saved images (the service passes the job id). ``seed_source`` picks the seed
    when the request has none (a random one by default).
    """
    _stages.check_inputs(request, loras, filename_prefix)
    values = _stages.resolve_values(request, model, seed_source)
    g = GraphBuilder()
    pipe = _stages.apply_loras(g, model, _stages.load_base_model(g, model), loras)
    conditioning = _stages.encode_prompts(g, request, model, pipe, values)
    latent_class = "EmptySD3LatentImage" if model.family == "flux" else "EmptyLatentImage"
    latent = g.add(
        latent_class,
        width=Field(values.width, "width"),
        height=Field(values.height, "height"),
        batch_size=Field(request.batch_size, "batch_size"),
    )
    sampler = _stages.sample(g, request, model, pipe, conditioning, latent.out(0), values)
    _stages.decode_and_save(g, sampler.out(0), pipe.vae, filename_prefix)
    return _stages.result(NAME, g, values, model, loras)
