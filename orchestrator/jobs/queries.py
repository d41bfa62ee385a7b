"""Read-side queries on jobs and events for the API (always scoped to one owner)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Job
from orchestrator.db.paging import newest_first, page
from orchestrator.errors import NotFound
from orchestrator.events.model import JobEventRecord
from orchestrator.events.types import TERMINAL_EVENTS

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


async def page_of_jobs(
    engine: AsyncEngine, stmt: Select[Job], *, limit: int, cursor: str | None
) -> tuple[list[Job], str | None]:
    """One page of a filtered job query, newest first, with the cursor of the next page (keyset paging)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(newest_first(stmt, Job, cursor=cursor, limit=limit))).all()
    return page([Job(**row._mapping) for row in rows], limit)


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
    return await page_of_jobs(engine, stmt, limit=limit, cursor=cursor)


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


async def job_counts(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    """``(kind, status, count)`` over every owner's jobs, for the metrics."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status"))
        return [(row[0], row[1], int(row[2])) for row in rows]
