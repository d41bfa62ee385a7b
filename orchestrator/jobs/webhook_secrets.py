"""Owners' webhook signing secrets (Standard Webhooks ``whsec_<base64>``), read by the dispatcher and the API.

Each owner has at most one current secret (``expires_at IS NULL``, a partial unique index). Rotating gives the
current one an expiry ``grace_s`` ahead and adds a new current one; until it expires, deliveries carry one
signature per valid secret (the ``webhook-signature`` header is a space-separated list), so receivers can
switch secrets without dropping a message.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SECRET_PREFIX = "whsec_"

_CURRENT = text(
    "SELECT secret, created_at, expires_at FROM webhook_secrets "
    "WHERE owner_id = :owner AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at DESC"
)
_INSERT = text(
    "INSERT INTO webhook_secrets (owner_id, secret) VALUES (:owner, :secret) "
    "ON CONFLICT (owner_id) WHERE expires_at IS NULL DO NOTHING RETURNING secret, created_at, expires_at"
)
_RETIRE = text(
    "UPDATE webhook_secrets SET expires_at = now() + make_interval(secs => :grace_s) "
    "WHERE owner_id = :owner AND expires_at IS NULL"
)


@dataclass(frozen=True)
class SigningSecret:
    """One secret and how long it signs."""

    secret: str
    created_at: datetime
    expires_at: datetime | None


def new_secret() -> str:
    """A fresh 192-bit secret in the Standard Webhooks format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


async def valid_secrets(conn: AsyncConnection, owner_id: uuid.UUID) -> list[SigningSecret]:
    """The owner's secrets that still sign, the current one first."""
    rows = (await conn.execute(_CURRENT, {"owner": owner_id})).all()
    return [SigningSecret(r.secret, r.created_at, r.expires_at) for r in sorted(rows, key=_current_first)]


def _current_first(row: object) -> tuple[bool, datetime]:
    expires_at = getattr(row, "expires_at", None)
    return (expires_at is not None, getattr(row, "created_at", datetime.min))


async def create_secret(conn: AsyncConnection, owner_id: uuid.UUID) -> SigningSecret | None:
    """A current secret for the owner; None when one exists already."""
    row = (await conn.execute(_INSERT, {"owner": owner_id, "secret": new_secret()})).first()
    return SigningSecret(row.secret, row.created_at, row.expires_at) if row else None


async def ensure_secrets(conn: AsyncConnection, owner_id: uuid.UUID) -> list[SigningSecret]:
    """The owner's valid secrets, creating a current one when there is none (every delivery is signed)."""
    found = await valid_secrets(conn, owner_id)
    if not any(s.expires_at is None for s in found):
        await create_secret(conn, owner_id)
        found = await valid_secrets(conn, owner_id)
    return found


async def rotate_secret(conn: AsyncConnection, owner_id: uuid.UUID, grace_s: float) -> list[SigningSecret]:
    """Retire the current secret after ``grace_s`` seconds and make a new one current (call in a transaction)."""
    await conn.execute(_RETIRE, {"owner": owner_id, "grace_s": grace_s})
    await create_secret(conn, owner_id)
    return await valid_secrets(conn, owner_id)
