# SPDX-License-Identifier: Apache-2.0
"""The audit log's SQL: one row per refused request or blocked image, read newest first by operators."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import AuditEvent
from orchestrator.db.paging import newest_first, page


@dataclass(frozen=True)
class AuditRecord:
    """What one audit row says (``id`` is given by the caller so that it can be reported back)."""

    action: str  # refused | blocked | blurred | rejected
    rule: str
    context: str
    owner_id: uuid.UUID | None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    key_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    fields: list[str] = field(default_factory=list)
    content_sha256: str | None = None
    excerpt: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


async def record_audit(engine: AsyncEngine, records: list[AuditRecord]) -> None:
    """Write the rows (one statement, committed at once: a refusal is on record before it is answered)."""
    if not records:
        return
    rows = [
        {
            "id": r.id,
            "owner_id": r.owner_id,
            "key_id": r.key_id,
            "request_id": r.request_id,
            "job_id": r.job_id,
            "action": r.action,
            "rule": r.rule,
            "context": r.context,
            "fields": r.fields,
            "content_sha256": r.content_sha256,
            "excerpt": r.excerpt,
            "detail": r.detail,
        }
        for r in records
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(AuditEvent), rows)


@dataclass(frozen=True)
class AuditFilter:
    """What GET /v1/audit narrows the log to."""

    rule: str | None = None
    context: str | None = None
    owner_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    since: datetime | None = None


async def list_audit(
    engine: AsyncEngine, where: AuditFilter, *, limit: int, cursor: str | None
) -> tuple[list[AuditEvent], str | None]:
    """A page of the log, newest first."""
    stmt = select(AuditEvent)
    if where.rule:
        stmt = stmt.where(AuditEvent.rule == where.rule)
    if where.context:
        stmt = stmt.where(AuditEvent.context == where.context)
    if where.owner_id:
        stmt = stmt.where(AuditEvent.owner_id == where.owner_id)
    if where.job_id:
        stmt = stmt.where(AuditEvent.job_id == where.job_id)
    if where.since:
        stmt = stmt.where(AuditEvent.created_at >= where.since)
    stmt = newest_first(stmt, AuditEvent, cursor=cursor, limit=limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return page([AuditEvent(**row._mapping) for row in rows], limit)
