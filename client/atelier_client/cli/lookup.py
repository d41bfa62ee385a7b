"""Finding subjects and LoRAs by name (or id), as people type them."""

from __future__ import annotations

import uuid

from atelier_client.async_client import AsyncClient
from atelier_client.errors import AtelierError
from atelier_client.models import LoraOut, SubjectOut


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def find_subject(client: AsyncClient, name_or_id: str) -> SubjectOut:
    """The caller's subject with this id or name (names compare case-insensitively)."""
    found = await lookup_subject(client, name_or_id)
    if found is None:
        raise AtelierError(f"no subject {name_or_id!r} (see `atelier subjects`)")
    return found


async def lookup_subject(client: AsyncClient, name_or_id: str) -> SubjectOut | None:
    """The subject, or None."""
    subject_id = _as_uuid(name_or_id)
    if subject_id is not None:
        return await client.get_subject(subject_id)
    cursor: str | None = None
    while True:
        page = await client.list_subjects(limit=200, cursor=cursor)
        for subject in page.items:
            if subject.name.casefold() == name_or_id.casefold():
                return subject
        if page.next_cursor is None:
            return None
        cursor = page.next_cursor


async def find_lora(client: AsyncClient, name_or_id: str) -> LoraOut:
    """The caller's LoRA with this id or name."""
    lora_id = _as_uuid(name_or_id)
    if lora_id is not None:
        return await client.get_lora(lora_id)
    cursor: str | None = None
    while True:
        page = await client.list_loras(limit=200, cursor=cursor)
        for lora in page.items:
            if lora.name.casefold() == name_or_id.casefold():
                return lora
        if page.next_cursor is None:
            raise AtelierError(f"no LoRA {name_or_id!r} (see `atelier loras`)")
        cursor = page.next_cursor
