# SPDX-License-Identifier: Apache-2.0
"""A job handed to this process's idle worker starts while its acceptance is committed (before its statement
runs when the worker knows the queue to be empty: that statement then waits for its work to go off), writes
nothing before the commit is known, and is withdrawn -- its work cancelled, nothing recorded -- when the commit
fails or the job is not written."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.events.types import EventType
from orchestrator.jobs import group_commit
from orchestrator.jobs.claims import JobClaims
from orchestrator.jobs.group_commit import HandoffLane
from orchestrator.jobs.idempotency import IdempotencyClaim, IdempotencyKeyTaken
from orchestrator.jobs.kinds import JobContext
from orchestrator.jobs.records import ClaimedJob, NewJob
from orchestrator.jobs.states import Status
from orchestrator.jobs.store import JobLost, JobStore
from orchestrator.jobs.worker import Worker, WorkerConfig
from tests.support.db import wait_for_terminal


class StartingKind:
    """Notes whether its job's acceptance was known to be committed when it started; waits for ``go``."""

    starts_before_commit = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = asyncio.Event()
        self.committed_at_start: bool | None = None
        self.cancelled = asyncio.Event()
        self.go = asyncio.Event()

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any]:
        self.committed_at_start = ctx._committed is None or ctx._committed.done()
        self.started.set()
        try:
            await self.go.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        await ctx.progress("working", 1, 1)
        return {"ok": True}


def _config(kind: str) -> WorkerConfig:
    return WorkerConfig(
        kinds=(kind,),
        concurrency=2,
        heartbeat_interval_s=0.05,
        heartbeat_timeout_s=5.0,
        shutdown_timeout_s=5.0,
        idle_poll_s=0.2,
    )


@asynccontextmanager
async def handed_off(store: JobStore, worker: Worker) -> AsyncIterator[None]:
    """The store hands just-accepted jobs to ``worker``; afterwards it stops, and the worker with it."""
    store.attach_handoff(worker.dispatcher)
    try:
        yield
    finally:
        store.attach_handoff(None)
        await worker.stop()


async def _withdrawn(
    kind: StartingKind,
    worker: Worker,
    store: JobStore,
    job: NewJob,
    creating: asyncio.Task[int],
    error: type[Exception],
    match: str | None = None,
) -> None:
    """The job's request fails with ``error``, and its early run was stopped and left nothing behind."""
    task = worker._running[job.id].task
    with pytest.raises(error, match=match):
        await creating
    await asyncio.gather(task, return_exceptions=True)
    assert kind.cancelled.is_set()  # its work was stopped
    assert worker.running_job_ids == []
    assert await store.status_of(job.id) is None


@pytest.fixture
async def fail_marked_commits(engine: AsyncEngine) -> AsyncIterator[None]:
    """A deferred constraint trigger: a job whose payload carries ``fail_at_commit`` fails its transaction's COMMIT
    (after the statement that wrote it succeeded), which is how a commit can be made to fail on purpose."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
CREATE FUNCTION test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload ? 'fail_at_commit' THEN RAISE EXCEPTION 'commit refused for the test'; END IF;
    RETURN NULL;
END $$"""
            )
        )
        await conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON jobs DEFERRABLE INITIALLY DEFERRED "
                "FOR EACH ROW EXECUTE FUNCTION test_fail_at_commit()"
            )
        )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER test_fail_at_commit ON jobs"))
            await conn.execute(text("DROP FUNCTION test_fail_at_commit()"))


async def test_a_handed_off_job_starts_before_its_commit_and_writes_after_it(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    kind = StartingKind(f"early-{uuid.uuid4().hex[:8]}")
    worker = Worker(store, {kind.name: kind}, _config(kind.name), claims=JobClaims(engine))
    async with handed_off(store, worker):
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        await store.create(job)
        assert kind.started.is_set()  # started before create returned: in the commit's flush, not after it
        assert kind.committed_at_start is False
        kind.go.set()
        await wait_for_terminal(database_url, [job.id])
        async with engine.connect() as conn:
            events = (
                await conn.execute(text("SELECT type FROM job_events WHERE job_id = :id ORDER BY id"), {"id": job.id})
            ).scalars()
            assert list(events) == ["job.queued", "job.started", "job.progress", "job.succeeded"]


async def test_a_failed_commit_withdraws_the_run_and_records_nothing(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, fail_marked_commits: None
) -> None:
    kind = StartingKind(f"early-{uuid.uuid4().hex[:8]}")
    worker = Worker(store, {kind.name: kind}, _config(kind.name), claims=JobClaims(engine))
    async with handed_off(store, worker):
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={"fail_at_commit": True})
        creating = asyncio.create_task(store.create(job))
        await kind.started.wait()  # it runs while the commit is tried
        await _withdrawn(kind, worker, store, job, creating, asyncpg.RaiseError, match="commit refused")
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM job_events WHERE job_id = :id"), {"id": job.id}) == 0
        assert worker.dispatcher.reserved == 0
        assert worker.dispatcher.offer(NewJob(owner_id=owner_id, kind=kind.name, payload={})) is not None  # free


async def test_a_kind_that_may_not_start_early_starts_after_the_commit(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    kind = StartingKind(f"late-{uuid.uuid4().hex[:8]}")
    kind.starts_before_commit = False
    worker = Worker(store, {kind.name: kind}, _config(kind.name), claims=JobClaims(engine))
    async with handed_off(store, worker):
        probe = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        lane = worker.dispatcher.offer(probe)
        assert lane == HandoffLane("slot", None, early=False)
        worker.dispatcher.decline(probe, lane)
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        await store.create(job)
        await kind.started.wait()
        assert kind.committed_at_start is True
        kind.go.set()
        await wait_for_terminal(database_url, [job.id])


async def test_a_context_writes_only_once_its_commit_is_known(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    job = NewJob(owner_id=owner_id, kind="noop", payload={})
    await store.create(job)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE jobs SET status = 'running', worker_id = 'w' WHERE id = :id"), {"id": job.id})
    claimed = ClaimedJob(job.id, owner_id, "noop", {}, attempts=1, max_attempts=3, backend=None)
    refused: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    refused.set_result(False)
    accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    accepted.set_result(True)

    with pytest.raises(JobLost):
        await JobContext(store, "w", claimed, committed=refused).emit(EventType.PREVIEW, {"step": 1})
    await JobContext(store, "w", claimed, committed=accepted).emit(EventType.PREVIEW, {"step": 2})

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT data->>'step' FROM job_events WHERE job_id = :id AND type = 'job.preview'"),
                {"id": job.id},
            )
        ).scalars()
        assert list(rows) == ["2"]


class CancellingKind(StartingKind):
    """Cancels the acceptance writer the moment it starts, i.e. while its commit is in flight."""

    def __init__(self, name: str, store: JobStore) -> None:
        super().__init__(name)
        self._store = store

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any]:
        writer = self._store._acceptance._writer
        assert writer is not None
        writer.cancel()
        return await super().run(job, ctx)


async def test_a_cancelled_acceptance_stops_its_early_run_instead_of_leaving_it_waiting(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind = CancellingKind(f"early-{uuid.uuid4().hex[:8]}", store)
    worker = Worker(store, {kind.name: kind}, _config(kind.name), claims=JobClaims(engine))
    async with handed_off(store, worker):  # its stop returns: nothing waits for a commit that will never be known
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        creating = asyncio.create_task(store.create(job))
        await kind.started.wait()
        task = worker._running[job.id].task
        with pytest.raises(asyncio.CancelledError):
            await creating
        await asyncio.gather(task, return_exceptions=True)
        assert kind.cancelled.is_set()
        assert worker.running_job_ids == []


async def test_an_acceptance_cancelled_while_it_waits_for_a_first_run_to_send_its_work_stops_that_run(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind = CancellingKind(f"first-{uuid.uuid4().hex[:8]}", store)
    claims = JobClaims(engine)
    worker = Worker(store, {kind.name: kind}, _config(kind.name), claims=claims)
    async with handed_off(store, worker):
        await _queue_seen_empty(worker, claims, kind.name)  # it goes first: the writer waits for its work
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        creating = asyncio.create_task(store.create(job))
        await kind.started.wait()
        task = worker._running[job.id].task
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(10):  # not left waiting for a batch that will never be written
                await creating
        await asyncio.gather(task, return_exceptions=True)
        assert kind.cancelled.is_set()
        assert worker.running_job_ids == []


def _starting_worker(store: JobStore, engine: AsyncEngine) -> tuple[StartingKind, JobClaims, Worker]:
    """A worker (2 lanes) of a new early kind, and the claims it reads the queue with."""
    kind = StartingKind(f"first-{uuid.uuid4().hex[:8]}")
    claims = JobClaims(engine)
    return kind, claims, Worker(store, {kind.name: kind}, _config(kind.name), claims=claims)


async def _queue_seen_empty(worker: Worker, claims: JobClaims, kind: str) -> None:
    """The worker's claims read the queue and found nothing of ``kind`` (as its claim loop does when idle)."""
    await claims._read_and_keep(frozenset({kind}), worker.dispatcher.policy())
    assert claims.known_empty(kind)


async def test_a_job_that_goes_first_starts_before_its_statement_and_is_written_as_started(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    kind, claims, worker = _starting_worker(store, engine)
    try:
        async with handed_off(store, worker):
            await _queue_seen_empty(worker, claims, kind.name)
            # A job queued elsewhere since that read, whose notification has not come: a statement deciding on its
            # own would queue the new job behind it; one the worker started already is written as started.
            waiting = NewJob(owner_id=owner_id, kind=kind.name, payload={})
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO jobs (id, owner_id, kind, payload) VALUES (:id, :owner, :kind, '{}')"),
                    {"id": waiting.id, "owner": owner_id, "kind": kind.name},
                )
            job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
            creating = asyncio.create_task(store.create(job))
            await kind.started.wait()
            assert not creating.done()
            assert kind.committed_at_start is False
            await creating
            assert await store.status_of(job.id) == Status.RUNNING
            kind.go.set()
            await wait_for_terminal(database_url, [job.id])
            assert await store.status_of(waiting.id) == Status.QUEUED
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM jobs WHERE kind = :kind"), {"kind": kind.name})


async def test_without_a_fresh_empty_read_a_job_waits_for_its_statement(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind, claims, worker = _starting_worker(store, engine)
    await _queue_seen_empty(worker, claims, kind.name)
    worker.job_available()  # a job notification: the empty read is no longer known to hold
    probe = NewJob(owner_id=owner_id, kind=kind.name, payload={})
    lane = worker.dispatcher.offer(probe)
    assert lane is not None
    assert lane.early
    assert not lane.first
    worker.dispatcher.decline(probe, lane)


async def test_a_first_job_whose_idempotency_key_was_taken_is_withdrawn(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind, claims, worker = _starting_worker(store, engine)
    key = f"key-{uuid.uuid4().hex}"
    earlier = NewJob(owner_id=owner_id, kind="noop", payload={}, idempotency=IdempotencyClaim(key, "a" * 64, 202, {}))
    await store.create(earlier)  # not handed off (no handoff attached yet): it holds the key
    async with handed_off(store, worker):
        await _queue_seen_empty(worker, claims, kind.name)
        job = NewJob(
            owner_id=owner_id, kind=kind.name, payload={}, idempotency=IdempotencyClaim(key, "b" * 64, 202, {})
        )
        creating = asyncio.create_task(store.create(job))
        await kind.started.wait()
        await _withdrawn(kind, worker, store, job, creating, IdempotencyKeyTaken)
        assert worker.dispatcher.reserved == 0


async def test_a_job_the_worker_has_no_lane_for_ends_the_known_empty_queue(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind, claims, worker = _starting_worker(store, engine)  # 2 lanes
    await _queue_seen_empty(worker, claims, kind.name)
    taken = [worker.dispatcher.offer(NewJob(owner_id=owner_id, kind=kind.name, payload={})) for _ in range(2)]
    assert all(lane is not None and lane.first for lane in taken)
    assert worker.dispatcher.offer(NewJob(owner_id=owner_id, kind=kind.name, payload={})) is None  # to be queued
    assert not claims.known_empty(kind.name)


class SendingKind(StartingKind):
    """Says its work went off (``ctx.work_sent``) when ``send`` is set, then waits for ``go``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.send = asyncio.Event()

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any]:
        self.started.set()
        await self.send.wait()
        ctx.work_sent()
        await self.go.wait()
        return {"ok": True}


async def test_a_first_jobs_statement_waits_until_its_run_sent_its_work(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "SENT_WAIT_S", 60.0)
    kind = SendingKind(f"first-{uuid.uuid4().hex[:8]}")
    claims = JobClaims(engine)
    worker = Worker(store, {kind.name: kind}, _config(kind.name), claims=claims)
    async with handed_off(store, worker):
        await _queue_seen_empty(worker, claims, kind.name)
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        creating = asyncio.create_task(store.create(job))
        await kind.started.wait()
        with pytest.raises(TimeoutError):  # a statement that does not wait commits in milliseconds
            await asyncio.wait_for(asyncio.shield(creating), 0.3)
        assert await store.status_of(job.id) is None  # not written yet
        kind.send.set()
        await creating
        assert await store.status_of(job.id) == Status.RUNNING
        kind.go.set()
        await wait_for_terminal(database_url, [job.id])


async def test_a_run_that_never_says_its_work_went_off_holds_its_acceptance_up_for_the_bound_at_most(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "SENT_WAIT_S", 0.05)
    kind, claims, worker = _starting_worker(store, engine)  # it never calls work_sent
    async with handed_off(store, worker):
        await _queue_seen_empty(worker, claims, kind.name)
        job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
        await asyncio.wait_for(store.create(job), 10)
        assert not kind.go.is_set()  # still running, its work never said to be sent
        assert await store.status_of(job.id) == Status.RUNNING
        kind.go.set()
        await wait_for_terminal(database_url, [job.id])
