"""The Postgres job store: acceptance, claims, heartbeats, events and guarded transitions.

Every write is one SQL statement (data-modifying CTEs) run in its own transaction, so a job row
change, its ``job_events`` row and the ``NOTIFY`` carrying the event id commit together or not at
all. Transitions are guarded: ``UPDATE … WHERE status = ANY(:allowed_from)``; zero rows means the
state machine (or another actor that got there first) forbids it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.direct import DirectPool, Sql
from orchestrator.db.engine import SERVER_SETTINGS, asyncpg_dsn
from orchestrator.errors import IllegalTransition, NotFound
from orchestrator.events.types import EventType
from orchestrator.jobs.group_commit import AcceptanceBatcher, CommittedEvents, Handoff, hand_over, writing
from orchestrator.jobs.outcome import RowsWrite
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.states import ALLOWED_FROM, TRANSITION_EVENT, Status

EVENTS_CHANNEL = "atelier_events"
JOBS_CHANNEL = "atelier_jobs"
CANCEL_CHANNEL = "atelier_cancel"


class JobLost(Exception):
    """The worker no longer owns the job (it was reclaimed, cancelled or finished elsewhere)."""


@dataclass(frozen=True)
class ReapedJob:
    """A running job whose heartbeat stopped, and what the reaper made of it."""

    job_id: uuid.UUID
    status: Status


#: The types of the parameters Postgres cannot infer from where they stand.
_CASTS = {"event_type": "text", "event_data": "jsonb", "result": "jsonb", "error": "jsonb", "events": "jsonb",
          "last_progress": "jsonb", "allowed_from": "text[]", "ids": "uuid[]"}  # fmt: skip


def _stmt(sql: str) -> Sql:
    return Sql(sql, _CASTS)


_EMIT_EVENT = """
event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id, :event_type, :event_data FROM job
    RETURNING id, job_id, owner_id, type, data, created_at
)
SELECT event.id AS event_id, event.job_id, event.owner_id, event.type, event.data, event.created_at,
       pg_notify('atelier_events', event.id::text) AS notified
FROM event
"""

_HEARTBEAT = _stmt(
    """
UPDATE jobs SET heartbeat_at = now()
WHERE id = ANY(:ids) AND status = 'running' AND worker_id = :worker_id
RETURNING id, cancel_requested
"""
)

# Several events of one running job in one statement, in the order given (each gets the next id); the job's
# progress becomes the last progress event's data. One notification, with the last id, stands for them all:
# a feed that hears it reads everything above its cursor.
_RUNNING_EVENTS = _stmt(
    """
WITH job AS (
    UPDATE jobs SET progress = coalesce(:last_progress, progress), heartbeat_at = now(), updated_at = now()
    WHERE id = :job_id AND status = 'running' AND worker_id = :worker_id
    RETURNING id, owner_id
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT job.id, job.owner_id, e.type, e.data
    FROM job, ROWS FROM (jsonb_to_recordset(:events) AS (type text, data jsonb)) WITH ORDINALITY AS e(type, data, n)
    ORDER BY e.n
    RETURNING id, job_id, owner_id, type, data, created_at
)
SELECT event.id AS event_id, event.job_id, event.owner_id, event.type, event.data, event.created_at,
       CASE WHEN event.id = (SELECT max(id) FROM event) THEN pg_notify('atelier_events', event.id::text) END
           AS notified
FROM event ORDER BY event.id
"""
)

_REQUEST_CANCEL = _stmt(
    """
WITH job AS (
    UPDATE jobs SET cancel_requested = true, updated_at = now()
    WHERE id = :job_id AND owner_id = :owner_id AND status = 'running'
    RETURNING id
)
SELECT id, pg_notify('atelier_cancel', id::text) AS notified FROM job
"""
)

_REAP = _stmt(
    """
WITH stale AS (
    SELECT id FROM jobs
    WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => :timeout_s)
    FOR UPDATE SKIP LOCKED
), job AS (
    UPDATE jobs j
    SET status = CASE WHEN j.cancel_requested THEN 'cancelled'
                      WHEN j.attempts >= j.max_attempts THEN 'failed'
                      ELSE 'queued' END,
        worker_id = NULL, heartbeat_at = NULL, updated_at = now(),
        finished_at = CASE WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
        error = CASE WHEN NOT j.cancel_requested AND j.attempts >= j.max_attempts
                     THEN jsonb_build_object('class', 'worker_lost', 'retryable', false,
                                             'message', CAST(:message AS text))
                     ELSE j.error END
    FROM stale WHERE j.id = stale.id
    RETURNING j.id, j.owner_id, j.status, j.attempts, j.error
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id,
           CASE status WHEN 'queued' THEN 'job.retrying' WHEN 'failed' THEN 'job.failed'
                       ELSE 'job.cancelled' END,
           CASE status WHEN 'queued' THEN jsonb_build_object('attempt', attempts + 1, 'reason', CAST(:message AS text))
                       WHEN 'failed' THEN jsonb_build_object('error', error)
                       ELSE '{}'::jsonb END
    FROM job
    RETURNING id, job_id
)
SELECT event.job_id, job.status, pg_notify('atelier_events', event.id::text) AS notified,
       pg_notify('atelier_jobs', event.job_id::text) AS woke
FROM event JOIN job ON job.id = event.job_id
"""
)

_STATUS_OF = _stmt("SELECT status FROM jobs WHERE id = :job_id")
_STATUS_OF_OWNER = _stmt("SELECT status FROM jobs WHERE id = :job_id AND owner_id = :owner_id")
_SET_BACKEND = _stmt("UPDATE jobs SET backend = :backend WHERE id = :job_id AND worker_id = :worker_id")
_COUNT_QUEUED = _stmt("SELECT count(*) AS n FROM jobs WHERE status = 'queued'")

# The columns each target status sets besides status and updated_at.
_TARGET_SETS: dict[Status, str] = {
    Status.RUNNING: "worker_id = :worker_id, attempts = attempts + 1, heartbeat_at = now(), started_at = now()",
    Status.QUEUED: "worker_id = NULL, heartbeat_at = NULL, run_after = now() + make_interval(secs => :delay_s)",
    Status.SUCCEEDED: "result = :result, finished_at = now()",
    Status.FAILED: "error = :error, finished_at = now()",
    Status.CANCELLED: "finished_at = now()",
}


@cache
def _transition_stmt(target: Status, guard_worker: bool, guard_owner: bool) -> Sql:
    guards = ["id = :job_id", "status = ANY(:allowed_from)"]
    if guard_worker:
        guards.append("worker_id = :worker_id")
    if guard_owner:
        guards.append("owner_id = :owner_id")
    sql = f"""
WITH job AS (
    UPDATE jobs SET status = :target, updated_at = now(), {_TARGET_SETS[target]}
    WHERE {" AND ".join(guards)}
    RETURNING id, owner_id
),
{_EMIT_EVENT}
"""
    if target is Status.QUEUED:
        sql += ", pg_notify('atelier_jobs', event.job_id::text) AS woke"
    return _stmt(sql)


@cache
def _succeed_stmt(rows_sql: str | None, casts: tuple[tuple[str, str], ...]) -> Sql:
    rows = f"rows AS ({rows_sql}),\n" if rows_sql else ""
    sql = f"""
WITH job AS (
    UPDATE jobs SET status = 'succeeded', result = :result, finished_at = now(), updated_at = now()
    WHERE id = :job_id AND status = 'running' AND worker_id = :worker_id
    RETURNING id, owner_id
), {rows}event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT job.id, job.owner_id, e.value->>'type', e.value->'data'
    FROM job, jsonb_array_elements(:events) WITH ORDINALITY AS e(value, n)
    ORDER BY e.n
    RETURNING id, job_id, owner_id, type, data, created_at
)
SELECT event.id AS event_id, event.job_id, event.owner_id, event.type, event.data, event.created_at,
       pg_notify('atelier_events', event.id::text) AS notified
FROM event ORDER BY event.id
"""
    return Sql(sql, {**_CASTS, **dict(casts)})


class JobStore:
    """Reads and writes jobs and their events. One instance per process, shared by all tasks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # The hot single-statement writes run on asyncpg directly (see orchestrator.db.direct); a statement
        # is its own transaction, so they need no BEGIN/COMMIT round trips.
        self._direct = DirectPool(
            asyncpg_dsn(engine.url.render_as_string(hide_password=False)),
            max_size=engine.pool.size(),  # type: ignore[attr-defined]
            server_settings=SERVER_SETTINGS,
        )
        self._acceptance = AcceptanceBatcher(self._direct)
        self._committed: CommittedEvents | None = None

    def on_committed(self, sink: CommittedEvents | None) -> None:
        """Hand the events this process's writes committed to ``sink`` as soon as they are, telling it while a
        write is under way (the event feed releases them without waiting for their notification and a read;
        see :meth:`orchestrator.events.feed.EventFeed.offer`)."""
        self._committed = sink
        self._acceptance.on_committed(sink)

    async def close(self) -> None:
        """Close the store's own connections (the engine is its creator's to dispose of)."""
        await self._direct.close()

    async def __aenter__(self) -> JobStore:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def _one(self, stmt: Sql, params: Mapping[str, Any]) -> asyncpg.Record | None:
        return await self._direct.fetchrow(stmt, params)

    async def _all(self, stmt: Sql, params: Mapping[str, Any]) -> Sequence[asyncpg.Record]:
        return await self._direct.fetch(stmt, params)

    async def _write_events(self, stmt: Sql, params: Mapping[str, Any]) -> Sequence[asyncpg.Record]:
        """Run a statement that writes events (rows with ``event_id``) and hand them over once committed."""
        with writing(self._committed):
            rows = await self._all(stmt, params)
            hand_over(self._committed, rows)
        return rows

    @property
    def engine(self) -> AsyncEngine:
        """The database engine (the scheduler's claims share it)."""
        return self._engine

    async def create(self, job: NewJob) -> int:
        """Accept a job: its row, its ``job.queued`` event and both notifications. Returns the event id.

        Concurrent calls are group-committed (see :mod:`orchestrator.jobs.group_commit`).
        """
        return await self._acceptance.submit(job)

    def attach_handoff(self, handoff: Handoff | None) -> None:
        """Let this process's worker start just-accepted jobs at once (see :mod:`orchestrator.jobs.group_commit`)."""
        self._acceptance.attach(handoff)

    async def heartbeat(self, worker_id: str, job_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bool]:
        """Refresh the heartbeat of jobs this worker runs; returns ``{job id: cancel requested}``.

        Jobs missing from the answer are no longer this worker's.
        """
        if not job_ids:
            return {}
        rows = await self._all(_HEARTBEAT, {"worker_id": worker_id, "ids": list(job_ids)})
        return {row["id"]: bool(row["cancel_requested"]) for row in rows}

    async def record(self, job_id: uuid.UUID, worker_id: str, event_type: EventType, data: Mapping[str, Any]) -> int:
        """Write an event of a running job (progress, preview, artifact). Raises JobLost if not ours."""
        [event_id] = await self.record_many(job_id, worker_id, [(event_type, data)])
        return event_id

    async def record_many(
        self, job_id: uuid.UUID, worker_id: str, events: Sequence[tuple[EventType, Mapping[str, Any]]]
    ) -> list[int]:
        """Write events of a running job in one transaction, in this order; returns their ids. Raises JobLost if
        the job is not ours (then none is written)."""
        if not events:
            return []
        progress = [data for event_type, data in events if event_type is EventType.PROGRESS]
        rows = await self._write_events(
            _RUNNING_EVENTS,
            {
                "job_id": job_id,
                "worker_id": worker_id,
                "last_progress": dict(progress[-1]) if progress else None,
                "events": [{"type": event_type.value, "data": dict(data)} for event_type, data in events],
            },
        )
        if not rows:
            raise JobLost(str(job_id))
        return [int(row["event_id"]) for row in rows]

    async def transition(
        self,
        job_id: uuid.UUID,
        target: Status,
        *,
        data: Mapping[str, Any] | None = None,
        worker_id: str | None = None,
        owner_id: uuid.UUID | None = None,
        allowed_from: frozenset[Status] | None = None,
        result: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        delay_s: float = 0.0,
    ) -> int:
        """Move a job to ``target`` and write its event; returns the event id.

        ``worker_id`` guards a running job's owner; ``owner_id`` guards API callers. Raises
        :class:`IllegalTransition` when the guarded UPDATE matches nothing.
        """
        sources = ALLOWED_FROM[target] if allowed_from is None else allowed_from & ALLOWED_FROM[target]
        stmt = _transition_stmt(target, worker_id is not None, owner_id is not None)
        params: dict[str, Any] = {
            "job_id": job_id,
            "target": target.value,
            "allowed_from": [s.value for s in sources],
            "worker_id": worker_id,
            "owner_id": owner_id,
            "event_type": TRANSITION_EVENT[target].value,
            "event_data": dict(data or {}),
            "result": dict(result) if result is not None else None,
            "error": dict(error) if error is not None else None,
            "delay_s": delay_s,
        }
        rows = await self._write_events(stmt, params)
        if not rows:
            raise await self._illegal(job_id, target, owner_id)
        return int(rows[0]["event_id"])

    async def succeed(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        result: Mapping[str, Any],
        *,
        artifacts: Sequence[Mapping[str, Any]] = (),
        rows: RowsWrite | None = None,
    ) -> int:
        """Finish a running job: its ``job.artifact`` events, its rows and ``job.succeeded`` in one statement,
        the artifacts' ids below the terminal one. Returns the terminal event's id; IllegalTransition when the
        job is not this worker's running job any more."""
        events = [{"type": EventType.ARTIFACT.value, "data": dict(a)} for a in artifacts]
        events.append({"type": EventType.SUCCEEDED.value, "data": {"result": dict(result)}})
        stmt = _succeed_stmt(rows.sql if rows else None, tuple(sorted(rows.casts.items())) if rows else ())
        params = {**(rows.params if rows else {}), "job_id": job_id, "worker_id": worker_id}
        params.update(result=dict(result), events=events)
        row_ids = await self._write_events(stmt, params)
        if not row_ids:
            raise await self._illegal(job_id, Status.SUCCEEDED, None)
        return int(row_ids[-1]["event_id"])

    async def _illegal(self, job_id: uuid.UUID, target: Status, owner_id: uuid.UUID | None) -> Exception:
        current = await self.status_of(job_id, owner_id)
        if current is None:
            return NotFound(f"job {job_id} not found")
        return IllegalTransition(
            f"job {job_id} is {current.value}; it cannot become {target.value}",
            extra={"current_status": current.value, "requested_status": target.value},
        )

    async def status_of(self, job_id: uuid.UUID, owner_id: uuid.UUID | None = None) -> Status | None:
        """The job's current status, or None when it does not exist (for this owner)."""
        stmt = _STATUS_OF_OWNER if owner_id is not None else _STATUS_OF
        row = await self._one(stmt, {"job_id": job_id, "owner_id": owner_id})
        return Status(row["status"]) if row else None

    async def request_cancel(self, job_id: uuid.UUID, owner_id: uuid.UUID) -> Status:
        """Cancel a job for its owner: at once when queued, cooperatively when running.

        Returns the status after the request (``cancelled`` or ``running``). Raises NotFound for
        another owner's job and IllegalTransition for a finished one.
        """
        try:
            await self.transition(
                job_id,
                Status.CANCELLED,
                owner_id=owner_id,
                allowed_from=frozenset({Status.QUEUED}),
                data={"reason": "cancelled by request before it started"},
            )
            return Status.CANCELLED
        except IllegalTransition:
            pass
        if await self._one(_REQUEST_CANCEL, {"job_id": job_id, "owner_id": owner_id}):
            return Status.RUNNING
        raise await self._illegal(job_id, Status.CANCELLED, owner_id)

    async def reap(self, timeout_s: float) -> list[ReapedJob]:
        """Requeue (or fail, or cancel) running jobs whose heartbeat is older than ``timeout_s``."""
        rows = await self._all(_REAP, {"timeout_s": timeout_s, "message": "worker lost: its heartbeat stopped"})
        return [ReapedJob(job_id=row["job_id"], status=Status(row["status"])) for row in rows]

    async def set_backend(self, job_id: uuid.UUID, worker_id: str, backend: str) -> None:
        """Remember which engine backend runs the job (so a retry can find its earlier run)."""
        await self._one(_SET_BACKEND, {"backend": backend, "job_id": job_id, "worker_id": worker_id})

    async def count_queued(self) -> int:
        """How many jobs wait to be claimed."""
        row = await self._one(_COUNT_QUEUED, {})
        return int(row["n"]) if row else 0
