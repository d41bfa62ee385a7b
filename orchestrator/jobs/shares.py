"""Owners' weights in the scheduler's fair queuing (``atelier owners weight``)."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_SET_WEIGHT = text(
    """
INSERT INTO owner_shares AS s (owner_id, weight) VALUES (:owner_id, :weight)
ON CONFLICT (owner_id) DO UPDATE SET weight = EXCLUDED.weight
"""
)

_OWNER_BY_NAME = text("SELECT id FROM owners WHERE name = :name")


async def set_owner_weight(engine: AsyncEngine, owner_id: uuid.UUID, weight: float) -> None:
    """Give an owner ``weight`` shares: with weight 2 it gets twice the turns of an owner with 1 when both wait."""
    if weight <= 0:
        raise ValueError("a weight must be positive")
    async with engine.begin() as conn:
        await conn.execute(_SET_WEIGHT, {"owner_id": owner_id, "weight": weight})


async def owner_id_by_name(engine: AsyncEngine, name: str) -> uuid.UUID | None:
    """The id of the owner called ``name``, if there is one."""
    async with engine.connect() as conn:
        value = await conn.scalar(_OWNER_BY_NAME, {"name": name})
    return value if isinstance(value, uuid.UUID) else None
