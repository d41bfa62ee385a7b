"""Read-side queries on jobs and events for the API (always scoped to one owner)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Job
from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.events.model import JobEventRecord
from orchestrator.jobs.states import TERMINAL_EVENTS

REPLAY_PAGE = 1000

_REPLAY_JOB = text(
    "SELECT id, job_id, owner_id, type, data, created_at FROM job_events "
    "WHERE job_id = :scope AND id > :after AND id <= :upto ORDER BY id LIMIT :limit"
)
_REPLAY_OWNER = text(
    "SELECT id, job_id, owner_id, type, data, created_at FROM job_events "
    "WHERE owner_id = :scope AND id > :after AND id <= :upto ORDER BY id LIMIT :limit"
)
_LAST_TERMINAL = text("SELECT max(id) FROM job_events WHERE job_id = :job_id AND type = ANY(:types)")


async def get_job(engine: AsyncEngine, job_id: uuid.UUID, owner_id: uuid.UUID, kind: str | None = None) -> Job:
    """One of the owner's jobs; NotFound for anyone else's (or another kind's)."""
    stmt = select(Job).where(Job.id == job_id, Job.owner_id == owner_id)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(f"no {kind or 'job'} with id {job_id}")
    return Job(**row._mapping)


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    """An opaque pagination cursor pointing just past a job."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{job_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor points to; 422 naming ``cursor`` when it is not one of ours."""
    try:
        stamp, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), uuid.UUID(job_id)
    except ValueError as exc:
        raise ValidationFailed([{"field": "cursor", "reason": "not a cursor returned by this API"}]) from exc


async def list_jobs(
    engine: AsyncEngine,
    owner_id: uuid.UUID,
    *,
    kind: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Job], str | None]:
    """The owner's jobs, newest first, one page at a time."""
    stmt = select(Job).where(Job.owner_id == owner_id)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if status:
        stmt = stmt.where(Job.status == status)
    if cursor:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < last_id)))
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    async with engine.connect() as conn:
        jobs = [Job(**row._mapping) for row in (await conn.execute(stmt)).all()]
    next_cursor = encode_cursor(jobs[limit - 1].created_at, jobs[limit - 1].id) if len(jobs) > limit else None
    return jobs[:limit], next_cursor


async def replay_events(
    engine: AsyncEngine, *, job_id: uuid.UUID | None, owner_id: uuid.UUID, after: int, upto: int
) -> Sequence[JobEventRecord]:
    """One page of settled events in ``(after, upto]`` for a job or for all of an owner's jobs."""
    stmt, scope = (_REPLAY_OWNER, owner_id) if job_id is None else (_REPLAY_JOB, job_id)
    params: dict[str, Any] = {"scope": scope, "after": after, "upto": upto, "limit": REPLAY_PAGE}
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt, params)).mappings().all()
    return [JobEventRecord.from_row(row) for row in rows]


async def last_terminal_event_id(engine: AsyncEngine, job_id: uuid.UUID) -> int | None:
    """The id of the job's terminal event, when it has one."""
    async with engine.connect() as conn:
        value = await conn.scalar(_LAST_TERMINAL, {"job_id": job_id, "types": [str(t) for t in TERMINAL_EVENTS]})
    return int(value) if value is not None else None
