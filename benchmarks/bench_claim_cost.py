# SPDX-License-Identifier: Apache-2.0
"""What one claim costs: plain FIFO, the scheduler as one SQL statement, and the scheduler as it is built
(a snapshot statement, the pure decision in Python, a claim statement).

Each arm claims every job of a freshly queued workload, one claim at a time, and the median, p90 and p99 per
claim are printed. Workloads: the mixed queue of the scheduling benchmark (60 jobs, 3 checkpoints x 4 LoRAs,
one owner) and the fairness one (one owner with 500 jobs, five with 10).

Arms: ``fifo`` (the claim before the scheduler), ``sql`` (the scheduler as one statement), ``python-fresh``
(the built scheduler reading the queue before every claim) and ``python`` (as built: the view of the queue is
kept between this process's claims and read again when it may be stale); ``decide`` times the pure decision
alone (``choose`` over the view, nothing written), the part of a ``python`` claim that is not a statement.

The SQL arm is a prototype that does less than the built scheduler (one lane; affinity with a single deadline
check instead of the deadline-order feasibility; no urgent jobs), so it is a lower bound of what a full SQL
version would cost; it exists only to be measured here.

    python -m benchmarks.bench_claim_cost [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import Text

from benchmarks.harness import percentile, scratch_database
from orchestrator.db.engine import create_engine
from orchestrator.jobs.claims import JobClaims
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.scheduling import Lane, Policy, choose
from orchestrator.jobs.store import JobStore

KIND = "bench-claim"

_FIFO = text(
    """
WITH next AS (
    SELECT id FROM jobs WHERE status = 'queued' AND kind = ANY(:kinds) AND run_after <= now()
    ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED
), job AS (
    UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, worker_id = :worker_id,
        heartbeat_at = now(), started_at = now(), updated_at = now()
    FROM next WHERE j.id = next.id
    RETURNING j.id, j.owner_id, j.kind, j.payload, j.attempts, j.max_attempts, j.backend
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id, 'job.started', jsonb_build_object('attempt', attempts, 'worker', :worker_id) FROM job
    RETURNING id
)
SELECT job.*, pg_notify('atelier_events', event.id::text) AS notified FROM job, event
"""
).bindparams(bindparam("kinds", type_=ARRAY(Text)))

_SQL_SCHEDULER = text(
    """
WITH clock AS (SELECT vtime FROM fair_clock),
queued AS (
    SELECT j.id, j.owner_id, j.priority, j.created_at, j.affinity_key, j.passed_over_at,
           greatest(coalesce(s.vtime, 0), (SELECT vtime FROM clock))
             + (row_number() OVER w - 1) / coalesce(s.weight, 1) AS tag
    FROM jobs j LEFT JOIN owner_shares s USING (owner_id)
    WHERE j.status = 'queued' AND j.kind = ANY(:kinds) AND j.run_after <= now()
    WINDOW w AS (PARTITION BY j.owner_id, j.priority ORDER BY j.created_at, j.id)
), ordered AS (
    SELECT *, row_number() OVER (ORDER BY tag, created_at, id) AS pos
    FROM queued WHERE priority = (SELECT max(priority) FROM queued)
), affine AS (
    SELECT a.id, a.pos FROM ordered a
    WHERE a.affinity_key = :loaded_key AND a.pos <= :lookahead AND NOT EXISTS (
        SELECT FROM ordered o
        WHERE o.pos < a.pos
          AND coalesce(o.passed_over_at, now()) + make_interval(secs => :max_wait)
              < now() + make_interval(secs => :run))
    ORDER BY a.pos LIMIT 1
), pick AS (
    SELECT id, pos FROM affine
    UNION ALL SELECT id, pos FROM ordered WHERE pos = 1 AND NOT EXISTS (SELECT FROM affine)
), target AS (
    SELECT j.id, j.owner_id FROM jobs j JOIN pick USING (id) WHERE j.status = 'queued' FOR UPDATE OF j SKIP LOCKED
), job AS (
    UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, worker_id = :worker_id, heartbeat_at = now(),
        started_at = now(), updated_at = now(), passed_over_at = NULL
    FROM target WHERE j.id = target.id
    RETURNING j.id, j.owner_id, j.kind, j.payload, j.attempts, j.max_attempts, j.backend
), passed AS (
    UPDATE jobs SET passed_over_at = now() FROM ordered o, pick
    WHERE jobs.id = o.id AND o.pos < pick.pos AND jobs.passed_over_at IS NULL AND EXISTS (SELECT FROM job)
    RETURNING jobs.id
), share AS (
    INSERT INTO owner_shares AS s (owner_id, vtime) SELECT owner_id, (SELECT vtime FROM clock) + 1 FROM job
    ON CONFLICT (owner_id) DO UPDATE SET vtime = greatest(s.vtime, (SELECT vtime FROM clock)) + 1.0 / s.weight
    RETURNING s.owner_id
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT id, owner_id, 'job.started', jsonb_build_object('attempt', attempts, 'worker', :worker_id) FROM job
    RETURNING id
)
SELECT job.*, pg_notify('atelier_events', event.id::text) AS notified, (SELECT count(*) FROM passed) AS marked,
       (SELECT count(*) FROM share) AS charged
FROM job, event
"""
).bindparams(bindparam("kinds", type_=ARRAY(Text)))


async def _owners(engine: AsyncEngine, count: int) -> list[uuid.UUID]:
    owners = [uuid.uuid4() for _ in range(count)]
    async with engine.begin() as conn:
        for owner in owners:
            await conn.execute(
                text("INSERT INTO owners (id, name) VALUES (:id, :name)"), {"id": owner, "name": str(owner)}
            )
    return owners


async def _fill(engine: AsyncEngine, workload: str) -> int:
    """Queue the workload; returns how many jobs it has."""
    rng = random.Random(7)
    if workload == "mixed":
        (owner,) = await _owners(engine, 1)
        keys = [f"ckpt-{c}\nlora-{lora}" for c in range(3) for lora in range(4)]
        jobs = [NewJob(owner_id=owner, kind=KIND, payload={}, affinity_key=rng.choice(keys)) for _ in range(60)]
    else:
        heavy, *light = await _owners(engine, 6)
        jobs = [NewJob(owner_id=heavy, kind=KIND, payload={}, affinity_key="k") for _ in range(500)]
        jobs += [NewJob(owner_id=o, kind=KIND, payload={}, affinity_key="k") for o in light for _ in range(10)]
    async with JobStore(engine) as store:
        await asyncio.gather(*(store.create(job) for job in jobs))
    return len(jobs)


async def _timed(count: int, claim: Callable[[], Awaitable[bool]]) -> list[float]:
    costs = []
    for _ in range(count):
        started = time.perf_counter()
        if not await claim():
            raise RuntimeError("a claim found nothing")
        costs.append((time.perf_counter() - started) * 1000)
    return costs


async def _arm(arm: str, workload: str) -> list[float]:
    async with scratch_database() as url:
        engine = create_engine(url, pool_size=2)
        auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        try:
            count = await _fill(engine, workload)
            lane = Lane("backend", frozenset({KIND}), loaded_key="ckpt-0\nlora-0")
            policy = Policy(affinity_max_wait_s=60.0, expected_run_s={KIND: 1.0}, expected_load_s=3.0)
            claims = JobClaims(engine)

            async def statement(stmt: object, params: dict[str, object]) -> bool:
                async with auto.connect() as conn:
                    return (await conn.execute(stmt, params)).first() is not None  # type: ignore[call-overload]

            async def python() -> bool:
                return await claims.claim("bench", [lane], policy) is not None

            async def python_fresh() -> bool:
                claims.invalidate()
                return await python()

            view = (await claims.read(frozenset({KIND}), policy))[0] if arm == "decide" else None

            async def decide() -> bool:
                if view is None:
                    return False
                dispatch = choose(list(view.jobs.values()), [lane], view.shares, view.clock, view.now(), policy)
                if dispatch is not None:
                    view.apply(dispatch)
                return dispatch is not None

            base: dict[str, object] = {"kinds": [KIND], "worker_id": "bench"}
            sql = {**base, "loaded_key": lane.loaded_key, "lookahead": 64, "max_wait": 60.0, "run": 1.0}
            claim = {
                "fifo": lambda: statement(_FIFO, base),
                "sql": lambda: statement(_SQL_SCHEDULER, sql),
                "python": python,
                "python-fresh": python_fresh,
                "decide": decide,
            }[arm]
            # the decision runs on the view as read: up to `lookahead` jobs per owner, as a claim sees it
            return await _timed(len(view.jobs) if view is not None else count, claim)
        finally:
            await engine.dispose()


async def main(repeat: int) -> None:
    print("per-claim cost, ms (median / p90 / p99), every job of the workload claimed one at a time")
    for workload in ("mixed", "fairness"):
        for arm in ("fifo", "sql", "python-fresh", "python", "decide"):
            costs = [c for _ in range(repeat) for c in await _arm(arm, workload)]
            print(
                f"  {workload:8} {arm:12} {statistics.median(costs):6.2f} / {percentile(costs, 90):6.2f} / "
                f"{percentile(costs, 99):6.2f}   ({len(costs)} claims)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="fresh workloads per arm")
    asyncio.run(main(parser.parse_args().repeat))
