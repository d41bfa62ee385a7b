"""Response and query models of /v1/loras."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.api.schemas import Page, PageQuery
from orchestrator.loras.store import LoraWithVersions


class SampleOut(BaseModel):
    """A sample image a training made while it trained."""

    url: str
    step: int | None = None
    prompt: str | None = None


class LoraVersionOut(BaseModel):
    """One published file of a LoRA."""

    version: int
    comfy_name: str = Field(description="Name in ComfyUI's LoRA list (path under models/loras).")
    sha256: str
    size_bytes: int
    base_model: str
    base_model_sha256: str | None = None
    training_job_id: uuid.UUID | None = None
    metadata: dict[str, Any] = Field(description="The file's safetensors metadata: sd-scripts' ss_* and atelier_*.")
    created_at: datetime
    file_url: str
    samples: list[SampleOut] = Field(
        default_factory=list, description="The sample images its training made (GET each url), oldest first."
    )


class LoraOut(BaseModel):
    """A LoRA of a subject and its versions (oldest first)."""

    id: uuid.UUID
    name: str = Field(description="Use it (or the id) in generations: loras[].lora.")
    subject_id: uuid.UUID | None = None
    base_family: str
    trigger_word: str | None = Field(None, description="Added to generation prompts that lack it.")
    created_at: datetime
    versions: list[LoraVersionOut]

    @classmethod
    def of(cls, found: LoraWithVersions) -> LoraOut:
        """From registry rows."""
        lora = found.lora
        versions = [
            LoraVersionOut(
                version=v.version,
                comfy_name=v.comfy_name,
                sha256=v.sha256,
                size_bytes=v.size_bytes,
                base_model=v.base_model,
                base_model_sha256=v.base_model_sha256,
                training_job_id=v.training_job_id,
                metadata=v.metadata_,
                created_at=v.created_at,
                file_url=f"/v1/loras/{lora.id}/versions/{v.version}/file",
                samples=[SampleOut(**s) for s in found.samples.get(v.training_job_id, [])]
                if v.training_job_id is not None
                else [],
            )
            for v in found.versions
        ]
        return cls(
            id=lora.id,
            name=lora.name,
            subject_id=lora.subject_id,
            base_family=lora.base_family,
            trigger_word=lora.trigger_word,
            created_at=lora.created_at,
            versions=versions,
        )


class LoraList(Page[LoraOut]):
    """A page of LoRAs, newest first."""


class LoraQuery(PageQuery):
    """Filters and paging for /v1/loras."""

    subject_id: uuid.UUID | None = Field(None, description="Only this subject's LoRAs.")
