"""Claiming the job the scheduler picks: read a snapshot of the queue, decide (pure), apply the decision.

Why not one SQL statement. The decision -- priority, weighted fair queuing between owners, model affinity with
deadlines -- was written both ways and measured per claim (``benchmarks/bench_claim_cost.py``, 2-core machine): the
SQL version needs window functions over every queued job, a second pass to lock the chosen row (window functions
cannot be combined with ``FOR UPDATE SKIP LOCKED``) and costs no less: medians 0.74-0.81 ms per claim on the 60-job
mixed queue and 1.74-1.92 ms on the 550-job fairness queue, against 0.70-0.74 and 0.76-0.78 ms for a claim as built
(the decision itself 0.06-0.08 ms; plain FIFO 0.56-0.74 ms; reading the queue before every claim 1.30-2.22 ms) --
and the SQL prototype does less than this module. The rules in Python are one small module that a property test can
hold to its bound. So a claim is two statements: :data:`_SNAPSHOT` (the first ``lookahead`` queued jobs per owner
and priority, every job passed over before, the owners' shares and the clock) and :data:`_CLAIM`, which re-checks
that the job is still queued (``SKIP LOCKED``), takes one of its owner's numbered slots when caps apply (a unique
index makes caps exact across processes: two claims cannot take the same slot), marks the jobs passed over, charges
the owner's virtual time, advances the clock and writes ``job.started`` -- one transaction.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import Text

from orchestrator.jobs.records import ClaimedJob
from orchestrator.jobs.scheduling import Dispatch, Lane, OwnerShare, Policy, QueuedJob, choose

log = logging.getLogger(__name__)

#: Choices one claim may lose to other processes before it waits for the next wake-up. Every process picks the
#: same head job, so a loser must move past the jobs others are claiming (CI: with two tries, both aimed at a row
#: whose claim was in flight, one worker process lost every race and ran 0 of 500 jobs).
_ATTEMPTS = 4

_SNAPSHOT = text(
    """
WITH queued AS (
    SELECT id, owner_id, kind, priority, created_at, affinity_key, passed_over_at,
           row_number() OVER (PARTITION BY owner_id, priority ORDER BY created_at, id) AS place
    FROM jobs
    WHERE status = 'queued' AND kind = ANY(:kinds) AND run_after <= now()
), running AS (
    SELECT owner_id, count(*) AS n FROM jobs
    WHERE :count_running AND status = 'running' AND owner_id IN (SELECT owner_id FROM queued)
    GROUP BY owner_id
), picked AS (
    SELECT q.id, q.owner_id, q.kind, q.priority, extract(epoch FROM q.created_at)::float8 AS created_at,
           q.affinity_key, extract(epoch FROM q.passed_over_at)::float8 AS passed_over_at,
           coalesce(s.vtime, 0) AS vtime, coalesce(s.weight, 1) AS weight, coalesce(r.n, 0) AS running,
           (SELECT vtime FROM fair_clock) AS clock, extract(epoch FROM now())::float8 AS now
    FROM queued q LEFT JOIN owner_shares s USING (owner_id) LEFT JOIN running r USING (owner_id)
    WHERE q.place <= :per_owner OR q.passed_over_at IS NOT NULL
), later AS (  -- with nothing ready: when the first delayed job (a retry's backoff) will be
    SELECT extract(epoch FROM min(run_after) - now())::float8 AS ready_in FROM jobs
    WHERE NOT EXISTS (SELECT FROM picked) AND status = 'queued' AND kind = ANY(:kinds) AND run_after > now()
)
SELECT picked.*, later.ready_in FROM later LEFT JOIN picked ON true
"""
).bindparams(bindparam("kinds", type_=ARRAY(Text)))

# The owner's virtual time is charged from what the row holds now (another process may have charged it since the
# snapshot): max(vtime, clock) + 1 / weight.
_CLAIM = text(
    """
WITH target AS (
    SELECT id, owner_id, backend AS previous_backend FROM jobs
    WHERE id = :job_id AND status = 'queued' AND run_after <= now()
    FOR UPDATE SKIP LOCKED
), slot AS (
    SELECT CASE WHEN :cap > 0 THEN (
        SELECT min(n) FROM generate_series(0, :cap - 1) AS n
        WHERE n NOT IN (SELECT owner_slot FROM jobs j, target t
                        WHERE j.owner_id = t.owner_id AND j.status = 'running' AND j.owner_slot IS NOT NULL)
    ) END AS n
), job AS (
    UPDATE jobs j
    SET status = 'running', attempts = j.attempts + 1, worker_id = :worker_id, heartbeat_at = now(),
        started_at = now(), updated_at = now(), passed_over_at = NULL, owner_slot = slot.n,
        backend = coalesce(:backend, j.backend)
    FROM target, slot
    WHERE j.id = target.id AND (:cap <= 0 OR slot.n IS NOT NULL)
    RETURNING j.id, j.owner_id, j.kind, j.payload, j.attempts, j.max_attempts, j.affinity_key,
              target.previous_backend
), passed AS (
    UPDATE jobs SET passed_over_at = now() + make_interval(secs => p.position * 1e-6)
    FROM unnest(CAST(:passed AS uuid[])) WITH ORDINALITY AS p(id, position)
    WHERE jobs.id = p.id AND jobs.status = 'queued' AND jobs.passed_over_at IS NULL AND EXISTS (SELECT FROM job)
    RETURNING jobs.id
), share AS (
    INSERT INTO owner_shares AS s (owner_id, vtime)
    SELECT owner_id, :clock + 1 FROM job
    ON CONFLICT (owner_id) DO UPDATE SET vtime = greatest(s.vtime, :clock) + 1.0 / s.weight
    RETURNING s.vtime
), clock AS (
    UPDATE fair_clock SET vtime = greatest(vtime, :new_clock) WHERE EXISTS (SELECT FROM job)
    RETURNING vtime
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id, 'job.started', jsonb_build_object('attempt', attempts, 'worker', :worker_id)
    FROM job
    RETURNING id
)
SELECT job.*, pg_notify('atelier_events', event.id::text) AS notified,
       (SELECT count(*) FROM passed) AS marked, (SELECT count(*) FROM share) AS charged,
       (SELECT count(*) FROM clock) AS ticked
FROM job, event
"""
).bindparams(bindparam("passed", type_=ARRAY(UUID(as_uuid=True))))


@dataclass
class QueueView:
    """What the scheduler decides on: queued jobs, owners' shares, the clock and the database's time. Kept
    between claims and updated with each of this process's own dispatches; read again when it may be stale."""

    kinds: frozenset[str]
    jobs: dict[uuid.UUID, QueuedJob]
    shares: dict[uuid.UUID, OwnerShare]
    clock: float
    db_now: float
    read_at: float = field(default_factory=time.monotonic)
    #: (owner, priority) groups that filled the per-owner limit: more may wait in the database. Value: how many
    #: of them are left in the view.
    truncated: dict[tuple[uuid.UUID, int], int] = field(default_factory=dict)

    def now(self) -> float:
        """The database's time now, as far as this view can tell."""
        return self.db_now + (time.monotonic() - self.read_at)

    def stale(self, max_age_s: float, per_owner: int) -> bool:
        """Too old (delayed retries may have become due), or a truncated group ran low."""
        low = any(left < per_owner // 2 for left in self.truncated.values())
        return low or time.monotonic() - self.read_at > max_age_s

    def apply(self, dispatch: Dispatch) -> None:
        """This process dispatched ``dispatch``: the view follows what the claim statement wrote."""
        job = self.jobs.pop(dispatch.job.id)
        group = (job.owner_id, job.priority)
        if group in self.truncated:
            self.truncated[group] -= 1
        now = self.now()
        for position, passed in enumerate(dispatch.passed_over):
            if passed in self.jobs:
                self.jobs[passed] = replace(self.jobs[passed], passed_over_at=now + position * 1e-6)
        share = self.shares.get(job.owner_id, OwnerShare())
        vtime = max(share.vtime, self.clock) + 1.0 / share.weight
        self.shares[job.owner_id] = replace(share, vtime=vtime, running=share.running + 1)
        self.clock = dispatch.clock


@dataclass(frozen=True)
class Claim:
    """A claimed job and the lane it was claimed for."""

    job: ClaimedJob
    lane: Lane


class JobClaims:
    """The scheduler's reads and writes (one instance per process).

    The view of the queue is kept between claims, so that a claim in steady state is one statement; it is
    read again when the queue changed elsewhere (:meth:`invalidate`, on a job notification), when a claim finds
    its job taken by another process, and after ``max_age_s``.

    An empty queue is kept until a job notification (or the listener's reconnection), or until the first
    delayed job (a retry's backoff) is due, which the read tells: every other way a job becomes ready is
    notified (acceptance, requeue, reaping). A claim then costs nothing: each finished job frees a lane and
    tries to claim, and a job accepted here starts before its row is written (``known_empty``). Kept for 2 s
    instead, the empty queue was read again on about one job's end in five of the overhead benchmark (~1 ms
    there). ``empty_max_age_s`` bounds it all the same.
    """

    def __init__(self, engine: AsyncEngine, *, max_age_s: float = 2.0, empty_max_age_s: float = 60.0) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._max_age_s = max_age_s
        self._empty_max_age_s = empty_max_age_s
        self._view: QueueView | None = None
        #: Kinds the last read found nothing ready of, and until when (monotonic) that holds without a
        #: notification: a claim for them reads nothing till then.
        self._empty: tuple[frozenset[str], float] | None = None
        self._changes = 0  # notifications so far (:meth:`invalidate`)
        #: The last claim found nothing only because other processes were taking every job it chose: the queue
        #: has work, so the caller should try again soon rather than wait for a notification.
        self.contended = False

    def invalidate(self) -> None:
        """Jobs were queued or requeued somewhere: read the queue again before the next decision."""
        self._view = None
        self._empty = None
        self._changes += 1

    async def _read_and_keep(self, kinds: frozenset[str], policy: Policy) -> QueueView | None:
        """Read the queue; keep what was read (a view, or that nothing is ready) unless a notification came
        meanwhile: the read may have missed that job, so the next claim reads again."""
        changes = self._changes
        view, ready_in = await self.read(kinds, policy)
        if changes == self._changes:
            self._view = view
            hold_s = self._empty_max_age_s if ready_in is None else min(ready_in, self._empty_max_age_s)
            self._empty = (kinds, time.monotonic() + hold_s) if view is None else None
        return view

    def known_empty(self, kind: str) -> bool:
        """Whether the last read found nothing of ``kind`` ready, with no job notification since, and none due."""
        return self._known_empty(frozenset({kind}))

    def _known_empty(self, kinds: frozenset[str]) -> bool:
        if self._empty is None:
            return False
        empty_kinds, until = self._empty
        return kinds <= empty_kinds and time.monotonic() < until

    def due_in(self) -> float | None:
        """Seconds until the empty queue kept must be read again (a delayed job falls due); None when none
        is kept."""
        return None if self._empty is None else max(0.0, self._empty[1] - time.monotonic())

    async def read(self, kinds: frozenset[str], policy: Policy) -> tuple[QueueView | None, float | None]:
        """The queue as the scheduler needs it (None when nothing of these kinds is ready to run), and then
        the seconds until the first delayed one is due (None when none waits)."""
        params = {"kinds": sorted(kinds), "per_owner": policy.lookahead, "count_running": policy.owner_max_running > 0}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_SNAPSHOT, params)).mappings().all()
        if rows[0]["id"] is None:  # ``later`` gives one row; nothing ready joined it
            ready_in = rows[0]["ready_in"]
            return None, None if ready_in is None else float(ready_in)
        jobs = {
            row["id"]: QueuedJob(
                id=row["id"],
                owner_id=row["owner_id"],
                kind=row["kind"],
                priority=row["priority"],
                created_at=row["created_at"],
                affinity_key=row["affinity_key"],
                passed_over_at=row["passed_over_at"],
            )
            for row in rows
        }
        shares = {
            row["owner_id"]: OwnerShare(vtime=row["vtime"], weight=row["weight"], running=row["running"])
            for row in rows
        }
        groups = Counter((job.owner_id, job.priority) for job in jobs.values() if job.passed_over_at is None)
        truncated = {group: count for group, count in groups.items() if count >= policy.lookahead}
        return QueueView(kinds, jobs, shares, rows[0]["clock"], rows[0]["now"], truncated=truncated), None

    async def claim(
        self, worker_id: str, lanes: Sequence[Lane], policy: Policy, *, backends: frozenset[str] = frozenset()
    ) -> Claim | None:
        """Claim what the scheduler picks for one of ``lanes``; None when nothing fits.

        ``backends`` are the lanes that are engine backends: a job claimed for one records it as its backend.
        """
        kinds = frozenset(kind for lane in lanes for kind in lane.kinds)
        self.contended = False
        lost: set[uuid.UUID] = set()
        for _ in range(_ATTEMPTS):
            view = self._view
            if view is None or not kinds <= view.kinds or view.stale(self._max_age_s, policy.lookahead):
                if self._known_empty(kinds):
                    return None
                view = await self._read_and_keep(kinds, policy)
            if view is None:
                return None
            candidates = [job for job in view.jobs.values() if job.id not in lost]
            dispatch = choose(candidates, lanes, view.shares, view.clock, view.now(), policy)
            if dispatch is None:
                return None
            backend = dispatch.lane.name if dispatch.lane.name in backends else None
            job = await self.apply(dispatch, worker_id, view.clock, backend=backend, cap=policy.owner_max_running)
            if job is not None:
                view.apply(dispatch)
                return Claim(job, dispatch.lane)
            # Taken, or being taken: a claim in flight elsewhere holds the row, and a fresh read still shows it
            # queued until that claim commits. Leave it out of the next choice, which reads the queue again.
            lost.add(dispatch.job.id)
            self._view = None
        self.contended = True
        return None

    async def apply(
        self, dispatch: Dispatch, worker_id: str, clock: float, *, backend: str | None, cap: int
    ) -> ClaimedJob | None:
        """Carry out a decision; None when the job is no longer there to take (or its owner's slots are full)."""
        params: Mapping[str, Any] = {
            "job_id": dispatch.job.id,
            "worker_id": worker_id,
            "backend": backend,
            "cap": cap,
            "passed": list(dispatch.passed_over),
            "clock": clock,
            "new_clock": dispatch.clock,
        }
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_CLAIM, params)).mappings().first()
        except IntegrityError:
            log.info("job %s: another claim took its owner's last slot first", dispatch.job.id)
            return None
        if row is None:
            return None
        return ClaimedJob(
            id=row["id"],
            owner_id=row["owner_id"],
            kind=row["kind"],
            payload=row["payload"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            backend=row["previous_backend"],
            lane=dispatch.lane.name,
            affinity_key=row["affinity_key"],
        )
