"""API key administration for operators (``atelier keys list|revoke``): the SQL, kept out of the CLI.

A revoked key is refused by every process within the key resolver's cache lifetime (30 s).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_LIST = text(
    """
SELECT k.id, o.name AS owner, k.prefix, k.created_at, k.revoked_at
FROM api_keys k JOIN owners o ON o.id = k.owner_id
WHERE (CAST(:owner AS text) IS NULL OR o.name = :owner) AND (:revoked OR k.revoked_at IS NULL)
ORDER BY k.created_at, k.id
"""
)
_REVOKE = text(
    """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id::text = :key OR prefix = :key
RETURNING id, (SELECT name FROM owners WHERE owners.id = api_keys.owner_id) AS owner, prefix, created_at, revoked_at
"""
)


@dataclass(frozen=True)
class KeyInfo:
    """One key as operators see it (never the secret: only its lookup prefix)."""

    id: uuid.UUID
    owner: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


async def list_keys(engine: AsyncEngine, owner: str | None = None, *, revoked: bool = False) -> list[KeyInfo]:
    """Keys, oldest first; only live ones unless ``revoked``."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_LIST, {"owner": owner, "revoked": revoked})).all()
    return [KeyInfo(r.id, r.owner, r.prefix, r.created_at, r.revoked_at) for r in rows]


async def revoke_key(engine: AsyncEngine, key: str) -> KeyInfo | None:
    """Revoke the key with this id or prefix (the 12 characters after ``atl_``); None when there is none."""
    async with engine.begin() as conn:
        row = (await conn.execute(_REVOKE, {"key": key.removeprefix("atl_").split("_", 1)[0]})).first()
    return KeyInfo(row.id, row.owner, row.prefix, row.created_at, row.revoked_at) if row else None
