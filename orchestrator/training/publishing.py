"""Publishing a finished training: provenance metadata, the models store, storage, registry rows, the event.

The next version number is taken under a row lock on the LoRA, and everything (file in
``models/loras/<subject>/v<version>/<name>.safetensors``, object in storage, version row) happens in that
transaction: if any step fails, the files written so far are removed and no row stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator import __version__
from orchestrator.db.models import Subject
from orchestrator.events.types import EventType
from orchestrator.jobs.kinds import JobContext, JobFailed
from orchestrator.loras.store import insert_version, remove_model_file, reserve_version, storage_prefix
from orchestrator.storage import Storage
from orchestrator.training.training_schemas import TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.config import TrainingPlan
from trainer.provenance import Provenance, write_with_provenance


@dataclass(frozen=True)
class PublishInputs:
    """What a publication needs besides the services."""

    model_path: Path
    subject: Subject
    payload: TrainingPayload
    plan: TrainingPlan
    manifest_sha256: str
    base_model_sha256: str
    resumed_from: str | None


def training_parameters(plan: TrainingPlan, payload: TrainingPayload) -> dict[str, Any]:
    """The parameters recorded in the LoRA's metadata (the plan's final values)."""
    return {
        "family": plan.spec.family.value,
        "script": plan.spec.script,
        "preset": plan.request.preset.value,
        "steps": plan.steps,
        "network_module": plan.spec.network_module,
        "network_dim": plan.network_dim,
        "network_alpha": plan.network_alpha,
        "learning_rate": plan.learning_rate,
        "optimizer": plan.optimizer.value,
        "resolution": plan.resolution,
        "batch_size": plan.batch_size,
        "seed": plan.request.seed,
        "cpu": plan.request.cpu,
        "photos": len(payload.photo_ids),
    }


def lora_file_url(lora_id: object, version: int) -> str:
    """The API URL of a version's file."""
    return f"/v1/loras/{lora_id}/versions/{version}/file"


def _provenance(ctx: JobContext, inputs: PublishInputs, version: int) -> Provenance:
    subject, payload = inputs.subject, inputs.payload
    return Provenance(
        subject_id=str(subject.id),
        consent_sha256=subject.consent_sha256,
        dataset_manifest_sha256=inputs.manifest_sha256,
        base_model=payload.base_model,
        base_model_sha256=inputs.base_model_sha256,
        base_family=payload.base_family.value,
        trigger_word=subject.trigger_word,
        service_version=__version__,
        lora_name=payload.lora_name,
        lora_version=version,
        training_job_id=str(ctx.job.id),
        parameters={**training_parameters(inputs.plan, payload), "resumed_from": inputs.resumed_from},
    )


@dataclass
class _Written:
    """Files written so far, to remove again when the publication fails."""

    model_file: str | None = None
    storage_key: str | None = None

    async def undo(self, storage: Storage, loras_dir: Path) -> None:
        """Remove the models-store file and the stored object (each if it was written)."""
        if self.model_file is not None:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(remove_model_file, loras_dir, self.model_file)
        if self.storage_key is not None:
            with contextlib.suppress(Exception):
                await storage.delete(self.storage_key)


async def _publish_version(
    conn: AsyncConnection,
    ctx: JobContext,
    storage: Storage,
    services: TrainingServices,
    inputs: PublishInputs,
    written: _Written,
) -> dict[str, Any]:
    subject, payload = inputs.subject, inputs.payload
    reserved = await reserve_version(
        conn,
        owner_id=ctx.job.owner_id,
        name=payload.lora_name,
        subject_id=subject.id,
        base_family=payload.base_family.value,
        trigger_word=subject.trigger_word,
    )
    if reserved is None:
        raise JobFailed("lora_name_taken", f"LoRA {payload.lora_name!r} belongs to another subject")
    lora_id, version = reserved
    comfy_name = f"{subject.id}/v{version}/{payload.lora_name}.safetensors"
    metadata = _provenance(ctx, inputs, version).metadata()
    written.model_file = comfy_name
    published = await asyncio.to_thread(
        write_with_provenance, inputs.model_path, services.loras_dir / comfy_name, metadata
    )
    key = written.storage_key = f"{storage_prefix(lora_id)}/v{version}/{payload.lora_name}.safetensors"
    await storage.put_file(key, published.path, "application/octet-stream")
    row = {
        "lora_id": lora_id,
        "version": version,
        "training_job_id": ctx.job.id,
        "storage_key": key,
        "comfy_name": comfy_name,
        "sha256": published.sha256,
        "size_bytes": published.size,
        "base_model": payload.base_model,
        "base_model_sha256": inputs.base_model_sha256,
        "metadata_": published.metadata,
    }
    await insert_version(conn, row)
    return row


async def publish(
    ctx: JobContext, engine: AsyncEngine, storage: Storage, services: TrainingServices, inputs: PublishInputs
) -> dict[str, Any]:
    """Publish the run's LoRA as the next version; emits ``job.artifact`` {kind: lora}; returns the job result."""
    written = _Written()
    try:
        async with engine.begin() as conn:
            row = await _publish_version(conn, ctx, storage, services, inputs, written)
    except BaseException:
        await written.undo(storage, services.loras_dir)
        raise
    name, version, lora_id = inputs.payload.lora_name, row["version"], row["lora_id"]
    url = lora_file_url(lora_id, version)
    artifact = {"kind": "lora", "url": url, "sha256": row["sha256"], "lora_id": str(lora_id), "name": name}
    artifact.update(version=version, comfy_name=row["comfy_name"])
    await ctx.emit(EventType.ARTIFACT, artifact)
    return {
        "lora_id": str(lora_id),
        "lora_name": name,
        "version": version,
        "comfy_name": row["comfy_name"],
        "sha256": row["sha256"],
        "size_bytes": row["size_bytes"],
        "file_url": url,
        "trigger_word": inputs.subject.trigger_word,
    }
