"""Building blocks the templates share: loading the base model, the LoRA stack, prompts, sampling, saving."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from comfy_workflows.graph import Field, GraphBuilder, NodeHandle, Output
from comfy_workflows.templates.base import (
    FAMILY_DEFAULTS,
    BaseModelSpec,
    BuiltWorkflow,
    GenerationRequest,
    LoraRef,
    ModelsUsed,
)

SeedSource = Callable[[], int]
"""Picks a seed when the request has none."""

RANDOM_SEED_LIMIT = 2**53
"""Random seeds stay below this so that JavaScript clients read them exactly."""

FLUX_SAMPLER_CFG = 1.0
"""Flux is guidance-distilled: the sampler runs at cfg 1 and FluxGuidance carries the guidance."""


@dataclass(frozen=True)
class Pipeline:
    """The model, text encoder and VAE outputs the rest of a graph uses."""

    model: Output
    clip: Output
    vae: Output


@dataclass(frozen=True)
class SamplingValues:
    """Request values with the family defaults filled in."""

    width: int
    height: int
    cfg: float
    scheduler: str
    seed: int


def random_seed() -> int:
    """A random seed in ``[0, 2**53)``."""
    return secrets.randbelow(RANDOM_SEED_LIMIT)


def resolve_values(request: GenerationRequest, model: BaseModelSpec, seed_source: SeedSource | None) -> SamplingValues:
    """Fill what the request left open from the family defaults; pick a seed when there is none."""
    defaults = FAMILY_DEFAULTS[model.family]
    seed = request.seed if request.seed is not None else (seed_source or random_seed)()
    return SamplingValues(
        width=request.width or defaults.size,
        height=request.height or defaults.size,
        cfg=request.cfg if request.cfg is not None else defaults.cfg,
        scheduler=request.scheduler or defaults.scheduler,
        seed=seed,
    )


def check_inputs(request: GenerationRequest, loras: Sequence[LoraRef], filename_prefix: str) -> None:
    """Reject a LoRA list that does not match the request's, and an unsafe ``filename_prefix``."""
    if len(loras) != len(request.loras):
        raise ValueError(f"the request names {len(request.loras)} LoRAs but {len(loras)} were resolved")
    parts = filename_prefix.replace("\\", "/").split("/")
    if not filename_prefix or filename_prefix.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"filename_prefix must be a relative name without '..', got {filename_prefix!r}")


def load_base_model(g: GraphBuilder, model: BaseModelSpec) -> Pipeline:
    """Load the base model: one checkpoint (SD1.5/SDXL) or UNet + dual CLIP + VAE (Flux)."""
    if model.family == "flux":
        unet = g.add("UNETLoader", unet_name=Field(str(model.unet), "base_model"), weight_dtype="default")
        clip = g.add(
            "DualCLIPLoader",
            clip_name1=Field(str(model.t5xxl), "base_model"),
            clip_name2=Field(str(model.clip_l), "base_model"),
            type="flux",
            device="default",
        )
        vae = g.add("VAELoader", vae_name=Field(str(model.vae), "base_model"))
        return Pipeline(unet.model, clip.clip, vae.vae)
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=Field(str(model.checkpoint), "base_model"))
    vae_out = ckpt.vae
    if model.vae:
        vae_out = g.add("VAELoader", vae_name=Field(model.vae, "base_model")).vae
    return Pipeline(ckpt.model, ckpt.clip, vae_out)


def apply_loras(g: GraphBuilder, model: BaseModelSpec, pipe: Pipeline, loras: Sequence[LoraRef]) -> Pipeline:
    """Chain one LoRA loader per LoRA (model-only for Flux, whose text encoders are not patched)."""
    for index, lora in enumerate(loras):
        path = f"loras[{index}]"
        name = Field(lora.name, f"{path}.lora")
        strength_model = Field(lora.strength_model, f"{path}.strength_model")
        if model.family == "flux":
            node = g.add("LoraLoaderModelOnly", model=pipe.model, lora_name=name, strength_model=strength_model)
            pipe = Pipeline(node.model, pipe.clip, pipe.vae)
            continue
        node = g.add(
            "LoraLoader",
            model=pipe.model,
            clip=pipe.clip,
            lora_name=name,
            strength_model=strength_model,
            strength_clip=Field(lora.strength_clip, f"{path}.strength_clip"),
        )
        pipe = Pipeline(node.model, node.clip, pipe.vae)
    return pipe


def encode_prompts(
    g: GraphBuilder, request: GenerationRequest, model: BaseModelSpec, pipe: Pipeline, values: SamplingValues
) -> tuple[Output, Output]:
    """Positive and negative conditioning; for Flux the positive goes through FluxGuidance."""
    positive = g.add("CLIPTextEncode", title="Positive Prompt", text=Field(request.prompt, "prompt"), clip=pipe.clip)
    negative = g.add(
        "CLIPTextEncode",
        title="Negative Prompt",
        text=Field(request.negative_prompt, "negative_prompt"),
        clip=pipe.clip,
    )
    if model.family != "flux":
        return positive.out(0), negative.out(0)
    guided = g.add("FluxGuidance", conditioning=positive.out(0), guidance=Field(values.cfg, "cfg"))
    return guided.out(0), negative.out(0)


def sample(
    g: GraphBuilder,
    request: GenerationRequest,
    model: BaseModelSpec,
    pipe: Pipeline,
    conditioning: tuple[Output, Output],
    latent: Output,
    values: SamplingValues,
    denoise: Field | float = 1.0,
) -> NodeHandle:
    """The KSampler node (cfg 1 for Flux, where FluxGuidance carries the request's cfg)."""
    cfg: Field | float = FLUX_SAMPLER_CFG if model.family == "flux" else Field(values.cfg, "cfg")
    return g.add(
        "KSampler",
        model=pipe.model,
        seed=Field(values.seed, "seed"),
        steps=Field(request.steps, "steps"),
        cfg=cfg,
        sampler_name=Field(request.sampler, "sampler"),
        scheduler=Field(values.scheduler, "scheduler"),
        positive=conditioning[0],
        negative=conditioning[1],
        latent_image=latent,
        denoise=denoise,
    )


def decode_and_save(g: GraphBuilder, samples: Output, vae: Output, filename_prefix: str) -> NodeHandle:
    """VAEDecode then SaveImage with the caller's file name prefix."""
    image = g.add("VAEDecode", samples=samples, vae=vae)
    return g.add("SaveImage", images=image.out(0), filename_prefix=filename_prefix)


def models_used(model: BaseModelSpec, loras: Sequence[LoraRef]) -> ModelsUsed:
    """The files the graph loads."""
    encoders = (str(model.t5xxl), str(model.clip_l)) if model.family == "flux" else ()
    return ModelsUsed(
        checkpoint=model.checkpoint if model.family != "flux" else None,
        unet=model.unet if model.family == "flux" else None,
        text_encoders=encoders,
        vae=model.vae,
        loras=tuple(lora.name for lora in loras),
    )


def result(
    template: str, g: GraphBuilder, values: SamplingValues, model: BaseModelSpec, loras: Sequence[LoraRef]
) -> BuiltWorkflow:
    """Package a finished graph with its outputs, seed, models and field map."""
    return BuiltWorkflow(
        template=template,
        graph=g.to_api(),
        output_node_ids=tuple(g.output_node_ids()),
        seed=values.seed,
        models=models_used(model, loras),
        field_map=g.field_map,
    )
