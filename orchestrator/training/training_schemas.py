"""Request and response models of /v1/trainings, and the payload a training job carries."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from orchestrator.api.schemas import Page
from orchestrator.jobs.views import JobOut
from trainer.dataset import CaptionMode
from trainer.presets import ModelFamily, Optimizer, Preset

LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SamplePromptIn(BaseModel):
    """A prompt sd-scripts renders while training; the subject's trigger word is added when missing."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=1000)
    negative_prompt: str | None = Field(None, max_length=1000)
    width: int | None = Field(None, ge=64, le=2048, multiple_of=8, description="Default: the training resolution.")
    height: int | None = Field(None, ge=64, le=2048, multiple_of=8, description="Default: the training resolution.")
    steps: int = Field(20, ge=1, le=150, description="Sampler steps.")
    scale: float = Field(7.0, ge=0.0, le=30.0, description="CFG scale.")
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


CAPTION_MODES = [mode.value for mode in CaptionMode]


class CaptionOptions(BaseModel):
    """How training captions are written: the mode, the template and per-photo captions (which always win)."""

    model_config = ConfigDict(extra="forbid")

    mode: CaptionMode | None = Field(
        None,
        description="auto: the service's captioner describes photos without a user caption; trigger: trigger and "
        "class word (plus user captions); manual: every photo needs a user caption. Default: auto when the "
        "service has a captioner (ATELIER_CAPTIONER), else trigger.",
    )
    template: str | None = Field(
        None, max_length=300, description="Pattern with {trigger}, {class} and {caption}, e.g. 'photo of {trigger}'."
    )
    per_photo: dict[uuid.UUID, str] = Field(
        default_factory=dict, description="Captions by photo id (override the photo's stored caption)."
    )


def _mode_or_options(schema: dict[str, Any]) -> None:
    """The OpenAPI form of ``captions``: also a bare mode string (the validator turns it into the object)."""
    choices = schema.setdefault("anyOf", [])
    choices.insert(0, {"type": "string", "enum": CAPTION_MODES})


class TrainingCreate(BaseModel):
    """A LoRA to train on a subject's accepted photos. Unset parameters come from the preset."""

    model_config = ConfigDict(extra="forbid")

    subject_id: uuid.UUID
    base_model: str = Field(min_length=1, max_length=300, description="A checkpoint in models/checkpoints.")
    base_family: ModelFamily | None = Field(
        None, description="sd15 | sdxl | flux; default: read from the checkpoint's tensor names."
    )
    preset: Preset = Field(Preset.BALANCED, description="fast | balanced | quality.")
    steps: int | None = Field(None, ge=1, le=100_000, description="Training steps.")
    network_dim: int | None = Field(None, ge=1, le=256, description="LoRA rank.")
    network_alpha: float | None = Field(None, gt=0, le=256, description="LoRA alpha.")
    learning_rate: float | None = Field(None, gt=0, le=1.0)
    resolution: int | None = Field(None, ge=64, le=2048, multiple_of=64, description="Training image size.")
    optimizer: Optimizer | None = None
    batch_size: int | None = Field(None, ge=1, le=32)
    captions: CaptionOptions | None = Field(
        None,
        description="A caption mode ('auto' | 'trigger' | 'manual') or {mode, template, per_photo}.",
        json_schema_extra=_mode_or_options,
    )
    sample_prompts: list[SamplePromptIn] = Field(default_factory=list, max_length=8)
    sample_every_n_steps: int | None = Field(None, ge=1, le=100_000, description="Default with prompts: at every save.")
    save_every_n_steps: int | None = Field(None, ge=1, le=100_000, description="Checkpoint + resumable state interval.")
    seed: int = Field(42, ge=0, le=2**32 - 1)
    lora_name: str | None = Field(
        None, description="Registry name (letters, digits, . _ -; 64 at most); default: from the subject's name."
    )
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first.")
    webhook_url: HttpUrl | None = Field(None, description="Called with the job when it ends.")

    @field_validator("captions", mode="before")
    @classmethod
    def _bare_mode(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("sample_prompts", mode="before")
    @classmethod
    def _plain_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"prompt": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("lora_name")
    @classmethod
    def _lora_name(cls, value: str | None) -> str | None:
        if value is not None and not LORA_NAME.match(value):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value


class TrainingPayload(TrainingCreate):
    """What a training job carries: the request with the family, LoRA name and photos decided."""

    base_family: ModelFamily
    lora_name: str
    photo_ids: list[uuid.UUID] = Field(default_factory=list)
    resume_from: uuid.UUID | None = Field(None, description="The earlier training job whose saved state is resumed.")


class RunInfo(BaseModel):
    """Where the sd-scripts run of a training is, and how far it got."""

    host: str | None = None
    pid: int | None = Field(None, description="Set while the process runs.")
    last_step: int = Field(description="The step of the latest saved state.")
    resumable: bool = Field(description="A saved state exists: POST .../resume can continue from it.")
    manifest_sha256: str | None = Field(None, description="SHA-256 of the dataset manifest (canonical JSON).")
    dataset_images: int | None = None


class LoraVersionRef(BaseModel):
    """The LoRA version a training produced."""

    lora_id: uuid.UUID
    name: str
    version: int
    comfy_name: str = Field(description="The name ComfyUI lists it under (relative to models/loras).")
    sha256: str
    file_url: str


class TrainingOut(JobOut):
    """A training job, its run and the LoRA version it produced."""

    subject_id: uuid.UUID | None = None
    lora_name: str | None = None
    resumed_from: uuid.UUID | None = None
    run: RunInfo | None = None
    lora: LoraVersionRef | None = None


class TrainingList(Page[TrainingOut]):
    """A page of trainings, newest first."""
