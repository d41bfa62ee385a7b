"""Accepting a job together with a feature's row that decides whether it exists, in one statement.

Some jobs belong to a row of their own: an erasure job to the ``erasures`` row that says a subject is being
erased. Written in two transactions, a crash between them leaves an erasure that points at no job (and a
subject refused as "being erased" forever). Here the feature's row, the job, its ``job.queued`` event, the
notifications and the request's idempotency key (when it sent one) are one statement: the ``gate`` CTE
inserts the feature's row and returns a row when the job is to be created; the job is inserted only then,
so all of it commits or none. (Group commit cannot batch these: each gate is its own SQL.)
"""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from orchestrator.events.types import EventType
from orchestrator.jobs.idempotency import CLAIM_KEYS_CTE
from orchestrator.jobs.outcome import RowsWrite
from orchestrator.jobs.records import NewJob

_ACCEPT_GATED = """
WITH input AS (
    SELECT CAST(:id AS uuid) AS id, CAST(:owner_id AS uuid) AS owner_id, CAST(:idem_key AS text) AS idem_key,
           CAST(:idem_sha256 AS text) AS idem_sha256, CAST(:idem_status AS smallint) AS idem_status,
           CAST(:idem_response AS text) AS idem_response, CAST(:idem_location AS text) AS idem_location
), {claimed}, allowed AS (
    SELECT id FROM input WHERE idem_key IS NULL OR id IN (SELECT job_id FROM claimed)
), gate AS (
    {gate}
), job AS (
    INSERT INTO jobs (id, owner_id, kind, priority, payload, max_attempts, webhook_url)
    SELECT :id, :owner_id, :kind, :priority, CAST(:payload AS jsonb), :max_attempts, :webhook_url
    WHERE EXISTS (SELECT FROM gate) AND EXISTS (SELECT FROM allowed)
    RETURNING id, owner_id, kind, priority
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id, :queued, jsonb_build_object('kind', kind, 'priority', priority) FROM job
    RETURNING id, job_id
)
SELECT event.id AS event_id, pg_notify('atelier_events', event.id::text) AS notified,
       pg_notify('atelier_jobs', event.job_id::text) AS woke
FROM event
"""


async def accept_gated(conn: AsyncConnection, job: NewJob, gate: RowsWrite) -> int | None:
    """Write ``gate`` and ``job`` in one statement on ``conn`` (the caller's transaction); the job's
    ``job.queued`` event id, or None when the gate returned nothing or the idempotency key was taken.

    ``gate.sql`` is the body of a CTE; it may read ``allowed`` (one row, ``id`` = the job's id, when the job
    may be created) and must return a row only when it wrote what the job belongs to.
    """
    claim = job.idempotency
    sql = _ACCEPT_GATED.format(claimed=CLAIM_KEYS_CTE.strip(), gate=gate.sql)
    params = {
        **gate.params,
        "id": job.id,
        "owner_id": job.owner_id,
        "kind": job.kind,
        "priority": job.priority,
        "payload": json.dumps(dict(job.payload)),
        "max_attempts": job.max_attempts,
        "webhook_url": job.webhook_url,
        "queued": EventType.QUEUED.value,
        "idem_key": claim.key if claim else None,
        "idem_sha256": claim.request_sha256 if claim else None,
        "idem_status": claim.status if claim else None,
        "idem_response": json.dumps(dict(claim.response)) if claim else None,
        "idem_location": claim.location if claim else None,
    }
    row = (await conn.execute(text(sql), params)).first()
    return int(row.event_id) if row is not None else None
