"""The scheduler through the database: fair shares between owners, weights, model affinity with its marks, exact
owner caps under concurrent claims, and jobs handed to an idle worker in their acceptance statement."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.jobs.claims import JobClaims, QueueView
from orchestrator.jobs.kinds import NoopKind
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.scheduling import Lane, Policy
from orchestrator.jobs.shares import set_owner_weight
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.worker import Worker, WorkerConfig
from tests.support.db import wait_for_terminal


def _kind() -> str:
    """A kind of its own, so that only this test's claims see its jobs (the run's database is shared)."""
    return f"sched-{uuid.uuid4().hex[:8]}"


async def _owner(engine: AsyncEngine) -> uuid.UUID:
    owner = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO owners (id, name) VALUES (:id, :name)"), {"id": owner, "name": f"o-{owner}"}
        )
    return owner


async def _queue(store: JobStore, owner: uuid.UUID, kind: str, count: int, key: str | None = None) -> list[uuid.UUID]:
    jobs = [NewJob(owner_id=owner, kind=kind, payload={}, affinity_key=key) for _ in range(count)]
    for job in jobs:  # one by one: their ages are their order
        await store.create(job)
    return [job.id for job in jobs]


async def _finish(engine: AsyncEngine, job_id: uuid.UUID) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE jobs SET status = 'succeeded' WHERE id = :id"), {"id": job_id})


async def _claim_all(claims: JobClaims, engine: AsyncEngine, lane: Lane, policy: Policy, count: int) -> list[uuid.UUID]:
    """Claim ``count`` jobs one at a time on one lane, finishing each before the next claim."""
    order = []
    for _ in range(count):
        claim = await claims.claim("w-test", [lane], policy)
        assert claim is not None
        order.append(claim.job.id)
        await _finish(engine, claim.job.id)
    return order


async def test_owners_take_turns_and_a_heavier_weight_gets_more_turns(store: JobStore, engine: AsyncEngine) -> None:
    kind = _kind()
    heavy, light, weighted = await _owner(engine), await _owner(engine), await _owner(engine)
    heavy_jobs = await _queue(store, heavy, kind, 6)
    light_jobs = await _queue(store, light, kind, 2)
    claims, lane = JobClaims(engine), Lane("slot", frozenset({kind}))
    order = await _claim_all(claims, engine, lane, Policy(), 8)
    owner_of = {**dict.fromkeys(heavy_jobs, "H"), **dict.fromkeys(light_jobs, "L")}
    assert "".join(owner_of[j] for j in order[:4]) in ("HLHL", "LHLH")  # turns, not 6 H first
    assert [j for j in order if owner_of[j] == "H"] == heavy_jobs  # each owner's own jobs stay in order

    await set_owner_weight(engine, weighted, 2.0)
    weighted_jobs = await _queue(store, weighted, kind, 6)
    more_light = await _queue(store, light, kind, 6)
    claims.invalidate()  # what the worker does on the notification of a queued job
    order = await _claim_all(claims, engine, lane, Policy(), 6)
    assert sum(j in weighted_jobs for j in order) == 4
    assert sum(j in more_light for j in order) == 2


async def test_a_lane_prefers_the_model_it_has_and_marks_the_jobs_it_passes(
    store: JobStore, engine: AsyncEngine
) -> None:
    kind, owner = _kind(), await _owner(engine)
    first_y = (await _queue(store, owner, kind, 1, key="y"))[0]
    x_jobs = await _queue(store, owner, kind, 2, key="x")
    claims, lane = JobClaims(engine), Lane("backend-1", frozenset({kind}), loaded_key="x")
    policy = Policy(affinity_max_wait_s=60.0, expected_run_s={kind: 1.0}, expected_load_s=1.0)
    claim = await claims.claim("w-test", [lane], policy, backends=frozenset({"backend-1"}))
    assert claim is not None
    assert claim.job.id == x_jobs[0]
    async with engine.connect() as conn:
        marked = await conn.scalar(text("SELECT passed_over_at IS NOT NULL FROM jobs WHERE id = :id"), {"id": first_y})
        backend = await conn.scalar(text("SELECT backend FROM jobs WHERE id = :id"), {"id": claim.job.id})
    assert marked is True
    assert backend == "backend-1"

    fifo = await claims.claim("w-test", [lane], Policy(fair=False))
    assert fifo is not None
    assert fifo.job.id == first_y


async def test_owner_caps_hold_under_concurrent_claims(store: JobStore, engine: AsyncEngine) -> None:
    kind, owner = _kind(), await _owner(engine)
    await _queue(store, owner, kind, 10)
    claims = JobClaims(engine)
    policy = Policy(owner_max_running=2)
    lanes = [[Lane(f"lane-{n}", frozenset({kind}))] for n in range(10)]
    results = await asyncio.gather(*(claims.claim(f"w-{n}", lanes[n], policy) for n in range(10)))
    assert sum(r is not None for r in results) <= 2  # a claim that lost a race for a slot took nothing
    while await claims.claim("w-again", lanes[0], policy) is not None:
        pass
    async with engine.connect() as conn:
        running = await conn.scalar(
            text("SELECT count(*) FROM jobs WHERE kind = :kind AND status = 'running'"), {"kind": kind}
        )
    assert running == 2


async def test_a_job_accepted_while_the_worker_is_idle_starts_in_its_acceptance_statement(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    kind = _kind()
    noop = NoopKind()
    noop.name = kind
    worker = Worker(store, {kind: noop}, _config(kind), claims=JobClaims(engine))
    store.attach_handoff(worker.dispatcher)
    try:
        job = NewJob(owner_id=owner_id, kind=kind, payload={"steps": 1})
        await store.create(job)
        await wait_for_terminal(database_url, [job.id])
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text("SELECT type, created_at FROM job_events WHERE job_id = :id ORDER BY id"), {"id": job.id}
                )
            ).all()
    finally:
        store.attach_handoff(None)
        await worker.stop()
    assert [r.type for r in rows] == ["job.queued", "job.started", "job.progress", "job.succeeded"]
    assert rows[0].created_at == rows[1].created_at  # one transaction: no claim came in between


async def test_a_job_accepted_behind_a_queued_one_is_queued_not_handed_over(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind = _kind()
    noop = NoopKind()
    noop.name = kind
    worker = Worker(store, {kind: noop}, _config(kind), claims=JobClaims(engine))  # not started: nothing claims
    earlier = NewJob(owner_id=owner_id, kind=kind, payload={"steps": 1})
    await store.create(earlier)
    store.attach_handoff(worker.dispatcher)
    try:
        later = NewJob(owner_id=owner_id, kind=kind, payload={"steps": 1})
        await store.create(later)
        assert await store.status_of(later.id) is not None
        async with engine.connect() as conn:
            statuses: dict[uuid.UUID, str] = dict(
                (
                    await conn.execute(
                        text("SELECT id, status FROM jobs WHERE id = ANY(:ids)"), {"ids": [earlier.id, later.id]}
                    )
                ).all()
            )
        assert statuses == {earlier.id: "queued", later.id: "queued"}
        assert worker.dispatcher.reserved == 0
        assert worker.running_job_ids == []
    finally:
        store.attach_handoff(None)
        await worker.stop()


def _config(kind: str) -> WorkerConfig:
    return WorkerConfig(
        kinds=(kind,),
        concurrency=2,
        heartbeat_interval_s=0.1,
        heartbeat_timeout_s=5.0,
        shutdown_timeout_s=5.0,
        idle_poll_s=0.2,
    )


async def test_a_kept_view_that_lost_a_job_to_another_process_reads_the_queue_again(
    store: JobStore, engine: AsyncEngine
) -> None:
    kind, owner = _kind(), await _owner(engine)
    jobs = await _queue(store, owner, kind, 3)
    lane = Lane("slot", frozenset({kind}))
    here, elsewhere = JobClaims(engine), JobClaims(engine)
    first = await here.claim("w-here", [lane], Policy())  # reads the queue and keeps it
    taken = await elsewhere.claim("w-elsewhere", [lane], Policy())  # takes the job `here` would pick next
    second = await here.claim("w-here", [lane], Policy())
    assert first is not None
    assert taken is not None
    assert second is not None
    assert [first.job.id, taken.job.id, second.job.id] == jobs


async def test_a_claim_whose_pick_another_process_is_claiming_takes_the_next_job(
    store: JobStore, engine: AsyncEngine
) -> None:
    kind, owner = _kind(), await _owner(engine)
    head, second, _ = await _queue(store, owner, kind, 3)
    lane = Lane("slot", frozenset({kind}))
    async with engine.connect() as other_process:
        # another process's claim statement in flight: it holds the head job's row, not yet committed, so every
        # fresh read still shows the head as queued
        transaction = await other_process.begin()
        await other_process.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": head})
        claim = await JobClaims(engine).claim("w-here", [lane], Policy())
        await transaction.rollback()
    assert claim is not None, "the claim gave up on the locked head instead of taking the next job"
    assert claim.job.id == second


async def test_an_empty_queue_is_not_read_again_until_a_job_is_notified(store: JobStore, engine: AsyncEngine) -> None:
    kind, owner = _kind(), await _owner(engine)
    lane = Lane("slot", frozenset({kind}))
    claims = JobClaims(engine, max_age_s=0.0)  # a view is never kept, an empty queue is: till a notification
    assert await claims.claim("w-here", [lane], Policy()) is None  # reads: nothing ready
    assert claims.known_empty(kind)
    assert claims.due_in() == pytest.approx(60.0, abs=5.0)  # no delayed job: only the safety bound ends it
    [job] = await _queue(store, owner, kind, 1)
    assert await claims.claim("w-here", [lane], Policy()) is None  # no notification yet: not read again
    claims.invalidate()  # the job's notification
    claim = await claims.claim("w-here", [lane], Policy())
    assert claim is not None
    assert claim.job.id == job


class _NotifiedDuringRead(JobClaims):
    """A job's notification arrives while the queue is being read (the read may have missed that job)."""

    async def read(self, kinds: frozenset[str], policy: Policy) -> tuple[QueueView | None, float | None]:
        read = await super().read(kinds, policy)
        self.invalidate()
        return read


async def test_a_read_that_a_notification_overtook_is_not_kept(store: JobStore, engine: AsyncEngine) -> None:
    kind, owner = _kind(), await _owner(engine)
    lane = Lane("slot", frozenset({kind}))
    claims = _NotifiedDuringRead(engine, max_age_s=3600)
    assert await claims.claim("w-here", [lane], Policy()) is None
    [job] = await _queue(store, owner, kind, 1)
    claim = await claims.claim("w-here", [lane], Policy())  # the empty read was not kept: this one reads again
    assert claim is not None
    assert claim.job.id == job


async def test_an_empty_queue_is_kept_until_the_first_delayed_job_falls_due(
    store: JobStore, engine: AsyncEngine
) -> None:
    kind, owner = _kind(), await _owner(engine)
    lane = Lane("slot", frozenset({kind}))
    later, sooner = await _queue(store, owner, kind, 2)
    async with engine.begin() as conn:  # as retries backing off do
        for job_id, delay_s in ((later, 40), (sooner, 20)):
            await conn.execute(
                text("UPDATE jobs SET run_after = now() + make_interval(secs => :s) WHERE id = :id"),
                {"s": delay_s, "id": job_id},
            )
    claims = JobClaims(engine)
    assert await claims.claim("w-here", [lane], Policy()) is None
    assert claims.known_empty(kind)
    due_in = claims.due_in()
    assert due_in is not None
    assert 15.0 < due_in <= 20.0
