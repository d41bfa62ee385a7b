"""Group commit for job acceptance: concurrent creates share one statement and one commit.

Each accepted job still gets its own row, its own ``job.queued`` event and its own notifications,
all committed before its caller hears back. Requests that arrive while a batch is being written
form the next batch, so a lone request goes straight through (no timer, no added latency) and a
burst pays one round trip and one WAL flush per batch instead of per job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import Integer, Text

from orchestrator.events.types import EventType

if TYPE_CHECKING:
    from orchestrator.jobs.store import NewJob

log = logging.getLogger(__name__)

MAX_BATCH = 256

_CREATE_MANY = text(
    """
WITH input AS (
    SELECT * FROM unnest(:ids, :owners, :kinds, :priorities, :payloads, :max_attempts, :webhooks)
        AS t(id, owner_id, kind, priority, payload, max_attempts, webhook_url)
), job AS (
    INSERT INTO jobs (id, owner_id, kind, priority, payload, max_attempts, webhook_url)
    SELECT id, owner_id, kind, priority, payload::jsonb, max_attempts, webhook_url FROM input
    RETURNING id, owner_id, kind, priority
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id, :event_type, jsonb_build_object('kind', kind, 'priority', priority) FROM job
    RETURNING id, job_id
)
SELECT event.job_id, event.id AS event_id, pg_notify('atelier_events', event.id::text) AS notified,
       pg_notify('atelier_jobs', event.job_id::text) AS woke
FROM event
"""
).bindparams(
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("owners", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("kinds", type_=ARRAY(Text)),
    bindparam("priorities", type_=ARRAY(Integer)),
    bindparam("payloads", type_=ARRAY(Text)),
    bindparam("max_attempts", type_=ARRAY(Integer)),
    bindparam("webhooks", type_=ARRAY(Text)),
)


class AcceptanceBatcher:
    """Writes queued jobs in batches; ``submit`` returns once the job's batch committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._pending: list[tuple[NewJob, asyncio.Future[int]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, job: NewJob) -> int:
        """Queue one job; returns its job.queued event id once its batch committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="job-acceptance")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                event_ids = await self._write([job for job, _ in batch])
            except Exception as exc:
                await self._write_one_by_one(batch, exc)
                continue
            for job, future in batch:
                if not future.done():
                    future.set_result(event_ids[job.id])

    async def _write_one_by_one(self, batch: list[tuple[NewJob, asyncio.Future[int]]], exc: Exception) -> None:
        """A failed batch fails only the jobs that fail on their own."""
        if len(batch) == 1:
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        log.warning("a batch of %d jobs failed (%s); writing them one by one", len(batch), exc)
        for job, future in batch:
            try:
                event_id = (await self._write([job]))[job.id]
            except Exception as single:
                if not future.done():
                    future.set_exception(single)
            else:
                if not future.done():
                    future.set_result(event_id)

    async def _write(self, jobs: Sequence[NewJob]) -> dict[uuid.UUID, int]:
        params = {
            "ids": [j.id for j in jobs],
            "owners": [j.owner_id for j in jobs],
            "kinds": [j.kind for j in jobs],
            "priorities": [j.priority for j in jobs],
            "payloads": [json.dumps(dict(j.payload)) for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "webhooks": [j.webhook_url for j in jobs],
            "event_type": EventType.QUEUED.value,
        }
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_CREATE_MANY, params)).all()
        return {row.job_id: int(row.event_id) for row in rows}
