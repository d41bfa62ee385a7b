"""What the /v1/loras endpoints do: read the owner's LoRAs, pick a version's file, delete a LoRA."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import LoraVersion
from orchestrator.errors import NotFound
from orchestrator.loras.store import LoraWithVersions, delete_lora_row, get_lora, list_loras, remove_lora_files
from orchestrator.storage import Storage


async def owned_lora(engine: AsyncEngine, owner_id: uuid.UUID, lora_id: uuid.UUID) -> LoraWithVersions:
    """One of the owner's LoRAs with its versions; NotFound for anyone else's."""
    async with engine.connect() as conn:
        found = await get_lora(conn, owner_id, lora_id)
    if found is None:
        raise NotFound(f"no LoRA with id {lora_id}")
    return found


async def lora_page(
    engine: AsyncEngine, owner_id: uuid.UUID, *, subject_id: uuid.UUID | None, limit: int, cursor: str | None
) -> tuple[list[LoraWithVersions], str | None]:
    """One page of the owner's LoRAs (newest first, each with its versions) and the next page's cursor."""
    async with engine.connect() as conn:
        return await list_loras(conn, owner_id, subject_id=subject_id, limit=limit, cursor=cursor)


def version_of(found: LoraWithVersions, wanted: str) -> LoraVersion:
    """The version numbered ``wanted`` (as the path spells it); NotFound when there is none."""
    version = next((v for v in found.versions if str(v.version) == wanted), None)
    if version is None:
        raise NotFound(f"LoRA {found.lora.id} has no version {wanted}")
    return version


async def delete_lora(
    engine: AsyncEngine, storage: Storage, loras_dir: Path, owner_id: uuid.UUID, lora_id: uuid.UUID
) -> None:
    """Its files leave storage and the models store (ComfyUI stops listing them), then its rows go."""
    found = await owned_lora(engine, owner_id, lora_id)
    await remove_lora_files(storage, loras_dir, found.lora.id, found.versions)
    async with engine.begin() as conn:
        await delete_lora_row(conn, found.lora.id)
