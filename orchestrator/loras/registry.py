"""Looking up a published LoRA by name or id, for generations; adding its trigger word to a prompt.

The generation feature calls :func:`resolve_lora` for every ``loras[]`` entry of a request and passes
``comfy_name`` to ComfyUI's LoRA loader (the file's path relative to ``models/loras``), and
:func:`insert_trigger_word` so that a prompt calls the LoRA's subject up even when the client forgot it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Lora, LoraVersion


@dataclass(frozen=True)
class ResolvedLora:
    """One version of an owner's LoRA, as a generation needs it."""

    lora_id: uuid.UUID
    name: str
    version: int
    comfy_name: str
    trigger_word: str | None
    base_family: str
    sha256: str


def _as_uuid(ref: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


async def resolve_lora(engine: AsyncEngine, owner_id: uuid.UUID, ref: str, version: int | None) -> ResolvedLora | None:
    """The owner's LoRA named ``ref`` (or whose id is ``ref``) at ``version`` (None: the latest).

    Returns None when the owner has no such LoRA or no such version; another owner's LoRA is never found.
    """
    lora_id = _as_uuid(ref)
    stmt = (
        select(
            Lora.id,
            Lora.name,
            Lora.trigger_word,
            Lora.base_family,
            LoraVersion.version,
            LoraVersion.comfy_name,
            LoraVersion.sha256,
        )
        .join(LoraVersion, LoraVersion.lora_id == Lora.id)
        .where(Lora.owner_id == owner_id, Lora.id == lora_id if lora_id is not None else Lora.name == ref)
    )
    if version is not None:
        stmt = stmt.where(LoraVersion.version == version)
    stmt = stmt.order_by(LoraVersion.version.desc()).limit(1)
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return ResolvedLora(
        lora_id=row.id,
        name=row.name,
        version=row.version,
        comfy_name=row.comfy_name,
        trigger_word=row.trigger_word,
        base_family=row.base_family,
        sha256=row.sha256,
    )


def has_word(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` as a whole word (case-insensitive: CLIP lower-cases prompts)."""
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text, flags=re.IGNORECASE) is not None


def insert_trigger_word(prompt: str, trigger_word: str | None) -> str:
    """``prompt`` with ``trigger_word`` put in front when it does not already contain it as a whole word.

    ``"portrait of sks"`` stays as it is; ``"portrait of sksman"`` becomes ``"sks, portrait of sksman"``.
    """
    if not trigger_word or has_word(prompt, trigger_word):
        return prompt
    stripped = prompt.strip()
    return f"{trigger_word}, {stripped}" if stripped else trigger_word
