# SPDX-License-Identifier: Apache-2.0
"""Reading and deleting generations (always scoped to one owner)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import GenerationImage, Job, Lora, LoraVersion
from orchestrator.errors import Conflict
from orchestrator.generation.payload import KIND, storage_prefix
from orchestrator.jobs.queries import get_job, page_of_jobs
from orchestrator.jobs.states import TERMINAL, Status
from orchestrator.storage import Storage


async def list_generations(
    engine: AsyncEngine,
    owner_id: uuid.UUID,
    *,
    status: Status | None,
    template: str | None,
    base_model: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    """The owner's generations, newest first, one page at a time (``template='workflow'``: submitted graphs)."""
    stmt = select(Job).where(Job.owner_id == owner_id, Job.kind == KIND)
    if status is not None:
        stmt = stmt.where(Job.status == status.value)
    if template == "workflow":
        stmt = stmt.where(Job.payload["template"].astext.is_(None))
    elif template:
        stmt = stmt.where(Job.payload["template"].astext == template)
    if base_model:
        stmt = stmt.where(Job.payload["base_model"]["name"].astext == base_model)
    return await page_of_jobs(engine, stmt, limit=limit, cursor=cursor)


@dataclass(frozen=True)
class ImageFile:
    """Where one generation image is kept: its storage key and type, and its bytes while they are pending
    (storage may not hold them durably yet; see :mod:`orchestrator.generation.pending_images`)."""

    key: str
    content_type: str
    pending: bytes | None = None


async def image_file(engine: AsyncEngine, job_id: uuid.UUID, owner_id: uuid.UUID, index: int) -> ImageFile | None:
    """One of the owner's generation images."""
    stmt = select(GenerationImage.storage_key, GenerationImage.content_type, GenerationImage.pending_data).where(
        GenerationImage.job_id == job_id, GenerationImage.owner_id == owner_id, GenerationImage.index == index
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return ImageFile(row[0], row[1], row[2]) if row is not None else None


@dataclass(frozen=True)
class PendingImage:
    """An image whose bytes are pending: its row, storage key, type and bytes."""

    row_id: uuid.UUID
    key: str
    content_type: str
    data: bytes


async def pending_images(engine: AsyncEngine, limit: int) -> list[PendingImage]:
    """Up to ``limit`` images whose bytes are pending, oldest first."""
    image = GenerationImage
    stmt = (
        select(image.id, image.storage_key, image.content_type, image.pending_data)
        .where(image.pending_data.is_not(None))
        .order_by(image.created_at)
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [PendingImage(row_id, key, kind, data) for row_id, key, kind, data in rows if data is not None]


async def clear_pending(engine: AsyncEngine, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Drop the pending bytes of these image rows (storage holds them durably); returns the ids still there."""
    stmt = (
        update(GenerationImage)
        .where(GenerationImage.id.in_(ids))
        .values(pending_data=None)
        .returning(GenerationImage.id)
    )
    async with engine.begin() as conn:
        return set((await conn.execute(stmt)).scalars().all())


async def delete_generation(engine: AsyncEngine, storage: Storage, job_id: uuid.UUID, owner_id: uuid.UUID) -> int:
    """Remove a finished generation: its stored files, then its job, events and image rows. Returns files removed.

    A queued or running generation is refused (409): cancel it first, so that no worker writes files after.
    """
    job = await get_job(engine, job_id, owner_id, kind=KIND)
    if Status(job.status) not in TERMINAL:
        raise Conflict(
            f"generation {job_id} is {job.status}; cancel it (POST /v1/generations/{job_id}/cancel), then delete it",
            extra={"current_status": job.status},
        )
    removed = await storage.delete_prefix(storage_prefix(job_id))
    stmt = delete(Job).where(Job.id == job_id, Job.owner_id == owner_id, Job.status.in_([s.value for s in TERMINAL]))
    async with engine.begin() as conn:
        await conn.execute(stmt)
    return removed


async def owner_lora_files(engine: AsyncEngine, owner_id: uuid.UUID) -> dict[str, dict[str, object]]:
    """The owner's registered LoRA files (``comfy_name`` -> name, version, family, trigger word)."""
    stmt = (
        select(Lora.name, Lora.base_family, Lora.trigger_word, LoraVersion.version, LoraVersion.comfy_name)
        .join(LoraVersion, LoraVersion.lora_id == Lora.id)
        .where(Lora.owner_id == owner_id)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return {
        row.comfy_name: {
            "lora": row.name,
            "version": row.version,
            "family": row.base_family,
            "trigger_word": row.trigger_word,
        }
        for row in rows
    }
