"""Idempotency keys of job-creating requests: the first answer is kept 24 hours and given again.

A request sent with ``Idempotency-Key: K`` by an owner creates its job and records ``(owner, K)`` with the
request's fingerprint and its answer *in the statement that creates the job* (see
:mod:`orchestrator.jobs.group_commit`): both commit or neither does, so a crash can leave neither a key
without its job nor a job whose retry would create a second one. The key's row is inserted first; a key
already taken (and younger than 24 hours) makes the statement skip the job, and the caller answers with
what the key holds. Keys are per owner, so two owners never see each other's answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

KEEP_HOURS = 24

# A data-modifying CTE for the acceptance statement: ``input`` has one row per job with ``idem_*`` columns.
# An expired key is taken over (its row rewritten); a live one is left alone and its job is not created.
CLAIM_KEYS_CTE = f"""
claimed AS (
    INSERT INTO idempotency_keys (owner_id, key, request_sha256, job_id, status, response, location)
    SELECT owner_id, idem_key, idem_sha256, id, idem_status, idem_response::jsonb, idem_location
    FROM input WHERE idem_key IS NOT NULL
    ON CONFLICT (owner_id, key) DO UPDATE
        SET request_sha256 = EXCLUDED.request_sha256, job_id = EXCLUDED.job_id, status = EXCLUDED.status,
            response = EXCLUDED.response, location = EXCLUDED.location, created_at = now()
        WHERE idempotency_keys.created_at < now() - interval '{KEEP_HOURS} hours'
    RETURNING job_id
)"""

_STORED = text(
    f"""
SELECT request_sha256, status, response, location FROM idempotency_keys
WHERE owner_id = :owner_id AND key = :key AND created_at >= now() - interval '{KEEP_HOURS} hours'
"""
)


class IdempotencyKeyTaken(Exception):
    """The job was not created: another request with the same key (and owner) was accepted first."""


@dataclass(frozen=True)
class IdempotencyClaim:
    """What a job-creating request records under its key: its fingerprint and the answer it gets."""

    key: str
    request_sha256: str
    status: int
    response: Mapping[str, Any]
    location: str | None = None


@dataclass(frozen=True)
class StoredAnswer:
    """The answer recorded under a key, and the fingerprint of the request that got it."""

    request_sha256: str
    status: int
    response: dict[str, Any]
    location: str | None


async def stored_answer(engine: AsyncEngine, owner_id: uuid.UUID, key: str) -> StoredAnswer | None:
    """The answer recorded under the owner's key in the last 24 hours, if any."""
    async with engine.connect() as conn:
        row = (await conn.execute(_STORED, {"owner_id": owner_id, "key": key})).first()
    if row is None:
        return None
    return StoredAnswer(row.request_sha256, int(row.status), dict(row.response), row.location)
