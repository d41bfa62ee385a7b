"""The ``training_runs`` rows: where a job's sd-scripts run lives, its process, dataset and saved state."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.db.models import Job, TrainingRun


def _run(row: Any) -> TrainingRun:
    return TrainingRun(**{c.key: row._mapping[c.key] for c in TrainingRun.__table__.columns})


async def get_run(conn: AsyncConnection, job_id: uuid.UUID) -> TrainingRun | None:
    """A job's run row, if it has started one."""
    row = (await conn.execute(select(TrainingRun).where(TrainingRun.job_id == job_id))).first()
    return _run(row) if row is not None else None


async def runs_for(conn: AsyncConnection, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, TrainingRun]:
    """Run rows of several jobs."""
    if not job_ids:
        return {}
    rows = (await conn.execute(select(TrainingRun).where(TrainingRun.job_id.in_(list(job_ids))))).all()
    return {run.job_id: run for run in map(_run, rows)}


async def ensure_run(
    engine: AsyncEngine, job_id: uuid.UUID, subject_id: uuid.UUID, run_dir: str, host: str
) -> TrainingRun:
    """The job's run row, created on its first attempt (a retry finds the earlier attempt's)."""
    stmt = (
        insert(TrainingRun)
        .values(job_id=job_id, subject_id=subject_id, run_dir=run_dir, host=host)
        .on_conflict_do_nothing(index_elements=[TrainingRun.job_id])
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)
        row = (await conn.execute(select(TrainingRun).where(TrainingRun.job_id == job_id))).one()
    return _run(row)


async def update_run(engine: AsyncEngine, job_id: uuid.UUID, **values: Any) -> None:
    """Set some columns of a run row (and its ``updated_at``)."""
    async with engine.begin() as conn:
        await conn.execute(
            update(TrainingRun).where(TrainingRun.job_id == job_id).values(updated_at=func.now(), **values)
        )


async def lingering_runs(engine: AsyncEngine, host: str) -> list[TrainingRun]:
    """Runs on ``host`` that still record a process although their job is not running."""
    stmt = (
        select(TrainingRun)
        .join(Job, Job.id == TrainingRun.job_id)
        .where(TrainingRun.host == host, TrainingRun.pgid.is_not(None), Job.status != "running")
    )
    async with engine.connect() as conn:
        return [_run(row) for row in (await conn.execute(stmt)).all()]
