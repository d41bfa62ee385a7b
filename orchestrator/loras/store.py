"""Registry rows (``loras``, ``lora_versions``) and the files behind them (storage, models store)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from orchestrator.db.models import Base, JobEvent, Lora, LoraVersion
from orchestrator.db.paging import newest_first, page
from orchestrator.storage import Storage

log = logging.getLogger(__name__)
ModelT = TypeVar("ModelT", bound=Base)


@dataclass(frozen=True)
class LoraWithVersions:
    """A LoRA and its versions, oldest version first, with the sample images their trainings made."""

    lora: Lora
    versions: list[LoraVersion]
    samples: dict[uuid.UUID, list[dict[str, Any]]] = field(default_factory=dict)
    """Training job id -> its ``job.artifact`` events of kind sample (url, step, prompt), oldest first."""


@dataclass(frozen=True)
class TrainedVersion:
    """The LoRA version a training job produced."""

    lora_id: uuid.UUID
    name: str
    version: int
    comfy_name: str
    sha256: str


def model_from_row(model: type[ModelT], row: Any) -> ModelT:
    """A detached ORM object from a Core result row (maps columns to attributes: ``metadata`` -> ``metadata_``)."""
    mapper = sa_inspect(model)
    return model(**{attr.key: row._mapping[attr.columns[0]] for attr in mapper.column_attrs})


def version_from_row(row: Any) -> LoraVersion:
    """A LoraVersion from a result row."""
    return model_from_row(LoraVersion, row)


def lora_from_row(row: Any) -> Lora:
    """A Lora from a result row."""
    return model_from_row(Lora, row)


def storage_prefix(lora_id: uuid.UUID) -> str:
    """Every stored file of a LoRA lives under this prefix."""
    return f"loras/{lora_id}"


async def reserve_version(
    conn: AsyncConnection,
    *,
    owner_id: uuid.UUID,
    name: str,
    subject_id: uuid.UUID,
    base_family: str,
    trigger_word: str,
) -> tuple[uuid.UUID, int] | None:
    """The LoRA's id and its next version number, the LoRA row created and locked for this transaction.

    None when the owner's LoRA of that name belongs to another subject.
    """
    await conn.execute(
        insert(Lora)
        .values(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            subject_id=subject_id,
            base_family=base_family,
            trigger_word=trigger_word,
        )
        .on_conflict_do_nothing(constraint="loras_owner_name")
    )
    row = (
        await conn.execute(
            select(Lora.id, Lora.subject_id).where(Lora.owner_id == owner_id, Lora.name == name).with_for_update()
        )
    ).one()
    if row.subject_id != subject_id:
        return None
    latest = await conn.scalar(select(func.max(LoraVersion.version)).where(LoraVersion.lora_id == row.id))
    return row.id, int(latest or 0) + 1


async def insert_version(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Add a version row; keys are the model's attribute names (``metadata_`` for the metadata column)."""
    await conn.execute(insert(LoraVersion).values({getattr(LoraVersion, key): value for key, value in values.items()}))


async def get_lora(conn: AsyncConnection, owner_id: uuid.UUID, lora_id: uuid.UUID) -> LoraWithVersions | None:
    """One of the owner's LoRAs with its versions."""
    row = (await conn.execute(select(Lora).where(Lora.id == lora_id, Lora.owner_id == owner_id))).first()
    if row is None:
        return None
    versions = (await versions_of(conn, [lora_id])).get(lora_id, [])
    return LoraWithVersions(lora_from_row(row), versions, await training_samples(conn, versions))


async def versions_of(conn: AsyncConnection, lora_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[LoraVersion]]:
    """Versions of several LoRAs, oldest first."""
    if not lora_ids:
        return {}
    stmt = select(LoraVersion).where(LoraVersion.lora_id.in_(list(lora_ids))).order_by(LoraVersion.version)
    out: dict[uuid.UUID, list[LoraVersion]] = {}
    for row in (await conn.execute(stmt)).all():
        version = version_from_row(row)
        out.setdefault(version.lora_id, []).append(version)
    return out


async def list_loras(
    conn: AsyncConnection,
    owner_id: uuid.UUID,
    *,
    subject_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[LoraWithVersions], str | None]:
    """One page of the owner's LoRAs, newest first, each with its versions; and the next page's cursor."""
    stmt = select(Lora).where(Lora.owner_id == owner_id)
    if subject_id is not None:
        stmt = stmt.where(Lora.subject_id == subject_id)
    rows = (await conn.execute(newest_first(stmt, Lora, cursor=cursor, limit=limit))).all()
    loras, next_cursor = page([lora_from_row(r) for r in rows], limit)
    versions = await versions_of(conn, [lora.id for lora in loras])
    samples = await training_samples(conn, [v for found in versions.values() for v in found])
    return [LoraWithVersions(lora, versions.get(lora.id, []), samples) for lora in loras], next_cursor


async def training_samples(
    conn: AsyncConnection, versions: Sequence[LoraVersion]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The sample images the trainings of ``versions`` recorded, by training job, oldest first."""
    job_ids = [v.training_job_id for v in versions if v.training_job_id is not None]
    if not job_ids:
        return {}
    stmt = (
        select(JobEvent.job_id, JobEvent.data)
        .where(JobEvent.job_id.in_(job_ids), JobEvent.type == "job.artifact", JobEvent.data["kind"].astext == "sample")
        .order_by(JobEvent.id)
    )
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for job_id, data in (await conn.execute(stmt)).all():
        out.setdefault(job_id, []).append({key: data.get(key) for key in ("url", "step", "prompt")})
    return out


async def versions_by_training_job(
    conn: AsyncConnection, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, TrainedVersion]:
    """The version each of these training jobs produced (jobs that produced none are left out)."""
    if not job_ids:
        return {}
    stmt = (
        select(
            LoraVersion.training_job_id,
            LoraVersion.version,
            LoraVersion.comfy_name,
            LoraVersion.sha256,
            Lora.id,
            Lora.name,
        )
        .join(Lora, Lora.id == LoraVersion.lora_id)
        .where(LoraVersion.training_job_id.in_(list(job_ids)))
    )
    return {
        row.training_job_id: TrainedVersion(row.id, row.name, row.version, row.comfy_name, row.sha256)
        for row in (await conn.execute(stmt)).all()
    }


async def delete_lora_row(conn: AsyncConnection, lora_id: uuid.UUID) -> None:
    """Remove a LoRA's row (its versions go with it)."""
    await conn.execute(delete(Lora).where(Lora.id == lora_id))


def remove_model_file(loras_dir: Path, comfy_name: str) -> bool:
    """Delete a published file from the models store, and its version folder when that is left empty."""
    path = loras_dir / comfy_name
    existed = path.is_file()
    path.unlink(missing_ok=True)
    folder = path.parent
    if folder != loras_dir and folder.is_dir() and not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
    return existed


async def remove_lora_files(storage: Storage, loras_dir: Path, lora_id: uuid.UUID, versions: list[LoraVersion]) -> int:
    """Delete every file of a LoRA (storage objects and models-store files); returns how many files."""
    removed = await storage.delete_prefix(storage_prefix(lora_id))
    for version in versions:
        if await asyncio.to_thread(remove_model_file, loras_dir, version.comfy_name):
            removed += 1
    return removed
