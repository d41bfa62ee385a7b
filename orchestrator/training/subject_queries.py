"""Reads and writes of subjects and photos, always scoped to one owner."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.db.models import Erasure, Photo, Subject
from orchestrator.db.paging import newest_first, page
from orchestrator.errors import Conflict, NotFound
from orchestrator.jobs.gated_acceptance import accept_gated
from orchestrator.jobs.outcome import RowsWrite
from orchestrator.jobs.records import NewJob


@dataclass(frozen=True)
class SubjectView:
    """A subject row with what the API shows beside it."""

    subject: Subject
    photo_count: int
    erasure: Erasure | None


def _subject(row: Any) -> Subject:
    return Subject(**{c.name: row._mapping[c.name] for c in Subject.__table__.columns})


def _photo(row: Any) -> Photo:
    return Photo(**{c.key: row._mapping[c.key] for c in Photo.__table__.columns})


async def insert_subject(engine: AsyncEngine, values: dict[str, Any]) -> Subject:
    """Create a subject; 409 naming ``name`` when the owner already has one of that name."""
    try:
        async with engine.begin() as conn:
            row = (await conn.execute(insert(Subject).values(**values).returning(*Subject.__table__.columns))).one()
    except IntegrityError as exc:
        raise Conflict(
            f"you already have a subject named {values['name']!r}",
            extra={"errors": [{"field": "name", "reason": "already used by another of your subjects"}]},
        ) from exc
    return _subject(row)


async def pending_erasure(conn: AsyncConnection, subject_id: uuid.UUID) -> Erasure | None:
    """The erasure requested for a subject and not yet completed, if any."""
    row = (
        await conn.execute(
            select(Erasure).where(Erasure.subject_id == subject_id, Erasure.completed_at.is_(None)).limit(1)
        )
    ).first()
    return Erasure(**row._mapping) if row is not None else None


async def subject_views(conn: AsyncConnection, subjects: Sequence[Subject]) -> list[SubjectView]:
    """Photo counts and pending erasures for a page of subjects (two queries for the page)."""
    ids = [s.id for s in subjects]
    if not ids:
        return []
    counts = dict(
        (
            await conn.execute(
                select(Photo.subject_id, func.count())
                .where(Photo.subject_id.in_(ids), Photo.status == "accepted")
                .group_by(Photo.subject_id)
            )
        ).all()
    )
    erasures = {
        row.subject_id: Erasure(**row._mapping)
        for row in (
            await conn.execute(select(Erasure).where(Erasure.subject_id.in_(ids), Erasure.completed_at.is_(None)))
        ).all()
    }
    return [SubjectView(s, int(counts.get(s.id, 0)), erasures.get(s.id)) for s in subjects]


async def get_subject(conn: AsyncConnection, owner_id: uuid.UUID, subject_id: uuid.UUID) -> Subject:
    """One of the owner's subjects; NotFound for anyone else's."""
    row = (await conn.execute(select(Subject).where(Subject.id == subject_id, Subject.owner_id == owner_id))).first()
    if row is None:
        raise NotFound(f"no subject with id {subject_id}")
    return _subject(row)


async def writable_subject(conn: AsyncConnection, owner_id: uuid.UUID, subject_id: uuid.UUID) -> Subject:
    """The owner's subject, unless it is being erased (409): nothing new may be added to it then."""
    subject = await get_subject(conn, owner_id, subject_id)
    if await pending_erasure(conn, subject_id) is not None:
        raise Conflict(f"subject {subject_id} is being erased")
    return subject


async def get_subject_view(engine: AsyncEngine, owner_id: uuid.UUID, subject_id: uuid.UUID) -> SubjectView:
    """A subject with its photo count and pending erasure."""
    async with engine.connect() as conn:
        subject = await get_subject(conn, owner_id, subject_id)
        return (await subject_views(conn, [subject]))[0]


async def list_subjects(
    engine: AsyncEngine, owner_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[SubjectView], str | None]:
    """The owner's subjects, newest first, one page at a time."""
    stmt = newest_first(select(Subject).where(Subject.owner_id == owner_id), Subject, cursor=cursor, limit=limit)
    async with engine.connect() as conn:
        subjects, next_cursor = page([_subject(r) for r in (await conn.execute(stmt)).all()], limit)
        views = await subject_views(conn, subjects)
    return views, next_cursor


async def list_photos(conn: AsyncConnection, subject_id: uuid.UUID, *, status: str | None = "accepted") -> list[Photo]:
    """A subject's photos, oldest first."""
    stmt = select(Photo).where(Photo.subject_id == subject_id)
    if status is not None:
        stmt = stmt.where(Photo.status == status)
    rows = (await conn.execute(stmt.order_by(Photo.created_at, Photo.id))).all()
    return [_photo(r) for r in rows]


async def get_photo(conn: AsyncConnection, subject_id: uuid.UUID, photo_id: uuid.UUID) -> Photo:
    """One photo of a subject; NotFound otherwise."""
    row = (await conn.execute(select(Photo).where(Photo.id == photo_id, Photo.subject_id == subject_id))).first()
    if row is None:
        raise NotFound(f"no photo with id {photo_id} in this subject")
    return _photo(row)


async def insert_photos(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> None:
    """Insert photo rows in one transaction."""
    if not rows:
        return
    async with engine.begin() as conn:
        await conn.execute(insert(Photo), list(rows))


async def replace_photos(engine: AsyncEngine, removed: Sequence[uuid.UUID], rows: Sequence[dict[str, Any]]) -> None:
    """In one transaction: remove the photo rows ``removed`` and insert ``rows``."""
    async with engine.begin() as conn:
        if removed:
            await conn.execute(delete(Photo).where(Photo.id.in_(list(removed))))
        if rows:
            await conn.execute(insert(Photo), list(rows))


async def delete_photo_row(engine: AsyncEngine, photo_id: uuid.UUID) -> None:
    """Remove a photo row."""
    async with engine.begin() as conn:
        await conn.execute(delete(Photo).where(Photo.id == photo_id))


# The erasure row is written only when the job may be created (``allowed``: its idempotency key, if any, was
# free); a pending erasure of the subject (the unique open-erasure index) makes it write nothing.
_ERASURE_GATE = """
    INSERT INTO erasures (id, owner_id, subject_id, job_id)
    SELECT :erasure_id, :owner_id, :subject_id, id FROM allowed
    ON CONFLICT (subject_id) WHERE completed_at IS NULL DO NOTHING
    RETURNING job_id
"""


async def accept_erasure(
    conn: AsyncConnection, owner_id: uuid.UUID, subject_id: uuid.UUID, job: NewJob
) -> uuid.UUID | None:
    """The subject's erasure job: its pending one, or ``job``, accepted in one statement with its erasure row
    (see :mod:`orchestrator.jobs.gated_acceptance`). None when ``job``'s idempotency key was taken first.
    NotFound when the subject is not the owner's. The subject row is locked, so two requests agree on one job.
    """
    await get_subject(conn, owner_id, subject_id)
    await conn.execute(select(Subject.id).where(Subject.id == subject_id).with_for_update())
    existing = await pending_erasure(conn, subject_id)
    if existing is not None and existing.job_id is not None:
        return existing.job_id
    if existing is not None:  # its job is gone (deleted): it can never complete, so it gives way
        await conn.execute(delete(Erasure).where(Erasure.id == existing.id))
    params = {"erasure_id": uuid.uuid4(), "owner_id": owner_id, "subject_id": subject_id}
    if await accept_gated(conn, job, RowsWrite(_ERASURE_GATE, params)) is None:
        return None
    return job.id
