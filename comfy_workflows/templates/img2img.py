"""Image to image: init image -> (resize) -> VAE encode -> KSampler at ``denoise`` -> VAE decode -> SaveImage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field as ModelField

from comfy_workflows.graph import Field, GraphBuilder, Output
from comfy_workflows.templates import _stages
from comfy_workflows.templates.base import BaseModelSpec, BuiltWorkflow, GenerationRequest, LoraRef

NAME = "img2img"
DESCRIPTION = "Redraw an uploaded image guided by a text prompt, optionally with a stack of LoRAs."
EXAMPLE = {
    "template": NAME,
    "base_model": "sd15-base",
    "prompt": "the same scene at dusk",
    "init_image": "example.png",
}

RESIZE_METHOD = "lanczos"


class Img2ImgRequest(GenerationRequest):
    """An image-to-image request. ``width``/``height``, when given, resize the init image (one alone keeps
    the aspect ratio; both crop to the center); otherwise the init image keeps its size."""

    template: Literal["img2img"] = ModelField(default="img2img", description="Template name: img2img.")
    init_image: str = ModelField(
        min_length=1,
        max_length=500,
        description="The image to start from. At build time: its file name in the backend's ComfyUI input "
        "folder (the service uploads the client's image and substitutes the name).",
    )
    denoise: float = ModelField(
        default=0.75,
        ge=0.0,
        le=1.0,
        description="How much of the init image is redrawn: 0 keeps it, 1 ignores it.",
    )


def _init_latent(g: GraphBuilder, request: Img2ImgRequest, vae: Output) -> Output:
    image = g.add("LoadImage", image=Field(request.init_image, "init_image")).out("IMAGE")
    if request.width is not None or request.height is not None:
        image = g.add(
            "ImageScale",
            image=image,
            upscale_method=RESIZE_METHOD,
            width=Field(request.width or 0, "width"),
            height=Field(request.height or 0, "height"),
            crop="center",
        ).out(0)
    latent = g.add("VAEEncode", pixels=image, vae=vae).out(0)
    if request.batch_size > 1:
        latent = g.add("RepeatLatentBatch", samples=latent, amount=Field(request.batch_size, "batch_size")).out(0)
    return latent


def build(
    request: Img2ImgRequest,
    model: BaseModelSpec,
    *,
    loras: Sequence[LoraRef] = (),
    filename_prefix: str,
    seed_source: _stages.SeedSource | None = None,
) -> BuiltWorkflow:
    """Build the img2img graph for ``model``.

    ``request.init_image`` must already be the file name the backend knows. ``loras``, ``filename_prefix`` and
    ``seed_source`` are as for :func:`comfy_workflows.templates.txt2img.build`.
    """
    _stages.check_inputs(request, loras, filename_prefix)
    values = _stages.resolve_values(request, model, seed_source)
    g = GraphBuilder()
    pipe = _stages.apply_loras(g, model, _stages.load_base_model(g, model), loras)
    conditioning = _stages.encode_prompts(g, request, model, pipe, values)
    latent = _init_latent(g, request, pipe.vae)
    denoise = Field(request.denoise, "denoise")
    sampler = _stages.sample(g, request, model, pipe, conditioning, latent, values, denoise)
    _stages.decode_and_save(g, sampler.out(0), pipe.vae, filename_prefix)
    return _stages.result(NAME, g, values, model, loras)
