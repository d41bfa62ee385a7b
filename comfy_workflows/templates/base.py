"""Types shared by all templates: the common request fields, the model spec, LoRA references, the result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from comfy_workflows.graph import ApiGraph, FieldMap

Family = Literal["sd15", "sdxl", "flux"]
"""Base model families the templates know how to wire."""

MAX_SEED = 2**64 - 1
"""ComfyUI's largest seed (KSampler ``seed`` max in ``/object_info``)."""

_NAME_PATTERN = r"^[A-Za-z0-9_.+\-]+$"


@dataclass(frozen=True)
class FamilyDefaults:
    """Values a request leaves to the base model family."""

    size: int
    cfg: float
    scheduler: str


FAMILY_DEFAULTS: Mapping[str, FamilyDefaults] = {
    "sd15": FamilyDefaults(size=512, cfg=7.0, scheduler="normal"),
    "sdxl": FamilyDefaults(size=1024, cfg=7.0, scheduler="normal"),
    "flux": FamilyDefaults(size=1024, cfg=3.5, scheduler="simple"),
}


class LoraRequest(BaseModel):
    """One LoRA of a generation request, as the API client names it."""

    model_config = ConfigDict(extra="forbid")

    lora: str = Field(min_length=1, max_length=200, description="Name of a LoRA known to Atelier.")
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="Version of the LoRA to use; the latest version when absent."
    )
    strength_model: float = Field(
        default=1.0, ge=-10.0, le=10.0, description="How strongly the LoRA changes the diffusion model."
    )
    strength_clip: float = Field(
        default=1.0,
        ge=-10.0,
        le=10.0,
        description="How strongly the LoRA changes the text encoder (ignored for Flux, whose LoRAs are model-only).",
    )


class GenerationRequest(BaseModel):
    """Fields every generation template takes. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(description="Name of the workflow template.")
    base_model: str = Field(min_length=1, max_length=200, description="Name of the base model to generate with.")
    prompt: str = Field(min_length=1, max_length=10_000, description="What the image should show.")
    negative_prompt: str = Field(
        default="", max_length=10_000, description="What the image should not show (no effect at Flux's cfg 1)."
    )
    loras: list[LoraRequest] = Field(
        default_factory=list, max_length=16, description="LoRAs to apply, in order (at most 16)."
    )
    width: int | None = Field(
        default=None,
        ge=64,
        le=2048,
        multiple_of=8,
        description="Image width in pixels, a multiple of 8; default 512 for SD1.5, 1024 for SDXL and Flux.",
    )
    height: int | None = Field(
        default=None,
        ge=64,
        le=2048,
        multiple_of=8,
        description="Image height in pixels, a multiple of 8; default 512 for SD1.5, 1024 for SDXL and Flux.",
    )
    steps: int = Field(default=20, ge=1, le=150, description="Number of sampling steps.")
    cfg: float | None = Field(
        default=None,
        ge=0.0,
        le=30.0,
        description="Classifier-free guidance scale; for Flux the FluxGuidance value (the sampler runs at cfg 1). "
        "Default 7 for SD1.5 and SDXL, 3.5 for Flux.",
    )
    sampler: str = Field(
        default="euler", max_length=64, pattern=_NAME_PATTERN, description="Sampler name as ComfyUI knows it."
    )
    scheduler: str | None = Field(
        default=None,
        max_length=64,
        pattern=_NAME_PATTERN,
        description="Scheduler name as ComfyUI knows it; default 'normal' for SD1.5 and SDXL, 'simple' for Flux.",
    )
    seed: int | None = Field(
        default=None, ge=0, le=MAX_SEED, description="Noise seed; a random one is picked (and reported) when absent."
    )
    batch_size: int = Field(default=1, ge=1, le=4, description="Number of images to generate (1-4).")


class BaseModelSpec(BaseModel):
    """The files a base model consists of, as the backend's ComfyUI names them.

    SD1.5 and SDXL load one ``checkpoint`` (``vae`` optionally overrides its VAE); Flux loads a diffusion model
    (``unet``), two text encoders (``clip_l``, ``t5xxl``) and a ``vae``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: Family = Field(description="Model family; decides how the graph is wired.")
    checkpoint: str | None = Field(default=None, description="Checkpoint file (SD1.5, SDXL).")
    unet: str | None = Field(default=None, description="Diffusion model file (Flux).")
    clip_l: str | None = Field(default=None, description="CLIP-L text encoder file (Flux).")
    t5xxl: str | None = Field(default=None, description="T5-XXL text encoder file (Flux).")
    vae: str | None = Field(default=None, description="VAE file; required for Flux, an override otherwise.")

    @model_validator(mode="after")
    def _files_for_family(self) -> BaseModelSpec:
        if self.family == "flux":
            missing = [n for n in ("unet", "clip_l", "t5xxl", "vae") if not getattr(self, n)]
            if missing:
                raise ValueError(f"a flux model needs {', '.join(missing)}")
        elif not self.checkpoint:
            raise ValueError(f"a {self.family} model needs a checkpoint")
        return self


class LoraRef(BaseModel):
    """A LoRA resolved to the file name the backend's ComfyUI knows, with its strengths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="LoRA file name as ComfyUI lists it (LoraLoader lora_name).")
    strength_model: float = Field(default=1.0, description="Strength applied to the diffusion model.")
    strength_clip: float = Field(default=1.0, description="Strength applied to the text encoder.")

    @classmethod
    def for_request(cls, item: LoraRequest, name: str) -> LoraRef:
        """The reference for request item ``item`` resolved to file ``name`` (strengths copied)."""
        return cls(name=name, strength_model=item.strength_model, strength_clip=item.strength_clip)


@dataclass(frozen=True)
class ModelsUsed:
    """The model files a built graph loads (for backend model affinity)."""

    checkpoint: str | None = None
    unet: str | None = None
    text_encoders: tuple[str, ...] = ()
    vae: str | None = None
    loras: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every file name, base model first, then text encoders, VAE and LoRAs."""
        head = [n for n in (self.checkpoint, self.unet) if n]
        tail = [self.vae] if self.vae else []
        return (*head, *self.text_encoders, *tail, *self.loras)


@dataclass(frozen=True)
class BuiltWorkflow:
    """A template's result: the API graph plus what the service needs to know about it."""

    template: str
    graph: ApiGraph
    output_node_ids: tuple[str, ...]
    seed: int
    """The seed actually used (the request's, or the random one picked)."""
    models: ModelsUsed
    field_map: FieldMap = field(default_factory=dict)
    """``(node_id, input_name)`` -> request field path (``"steps"``, ``"loras[1].lora"``)."""
