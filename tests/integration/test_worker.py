"""The worker in-process: graceful shutdown, cooperative cancel, failures and retries."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.jobs.kinds import JobContext, JobFailed, NoopKind
from orchestrator.jobs.records import ClaimedJob, NewJob
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.worker import Worker, WorkerConfig
from tests.support.db import wait_for_event, wait_for_terminal


def _config(kind: str, shutdown_timeout_s: float = 5.0) -> WorkerConfig:
    return WorkerConfig(
        kinds=(kind,),
        concurrency=2,
        heartbeat_interval_s=0.1,
        heartbeat_timeout_s=5.0,
        shutdown_timeout_s=shutdown_timeout_s,
        idle_poll_s=0.2,
        retry_base_delay_s=0.01,
    )


def _without_idle_poll(kind: str, retry_base_delay_s: float = 1.0) -> WorkerConfig:
    """One job at a time, and an idle poll (600 s) far beyond any wait of these tests."""
    return replace(_config(kind), concurrency=1, idle_poll_s=600.0, retry_base_delay_s=retry_base_delay_s)


class _Kind:
    """A noop under a unique name, so only this test's worker claims its jobs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._noop = NoopKind()

    async def run(self, job: ClaimedJob, ctx: JobContext) -> dict[str, object]:
        return dict(await self._noop.run(job, ctx))


async def _types(engine: AsyncEngine, job_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT type FROM job_events WHERE job_id = :id ORDER BY id"), {"id": job_id})
        return [r[0] for r in rows]


async def _started(
    store: JobStore, kind: _Kind, owner_id: uuid.UUID, payload: dict[str, object], shutdown_timeout_s: float = 5.0
) -> tuple[Worker, NewJob]:
    worker = Worker(store, {kind.name: kind}, _config(kind.name, shutdown_timeout_s))
    job = NewJob(owner_id=owner_id, kind=kind.name, payload=payload)
    await store.create(job)
    await worker.start()
    return worker, job


async def test_shutdown_lets_short_jobs_finish_and_requeues_the_rest(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    kind = _Kind(f"k-{uuid.uuid4().hex[:6]}")
    worker, long_job = await _started(store, kind, owner_id, {"steps": 100, "step_ms": 100}, shutdown_timeout_s=0.3)
    short_job = NewJob(owner_id=owner_id, kind=kind.name, payload={"steps": 1, "step_ms": 50})
    await store.create(short_job)
    await wait_for_event(database_url, long_job.id, "job.progress")
    await wait_for_event(database_url, short_job.id, "job.started")
    await worker.stop()
    assert (await _types(engine, short_job.id))[-1] == "job.succeeded"
    assert (await _types(engine, long_job.id))[-1] == "job.retrying"
    assert str(await store.status_of(long_job.id)) == "queued"


async def test_cancel_stops_a_running_job_and_failures_retry_then_fail(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    kind = _Kind(f"k-{uuid.uuid4().hex[:6]}")
    worker, job = await _started(store, kind, owner_id, {"steps": 1000, "step_ms": 20})
    try:
        await wait_for_event(database_url, job.id, "job.progress")
        await store.request_cancel(job.id, owner_id)
        worker.cancel_requested(str(job.id))
        await wait_for_terminal(database_url, [job.id], timeout_s=10)
        assert (await _types(engine, job.id))[-1] == "job.cancelled"
    finally:
        await worker.stop()


async def test_a_retryable_failure_is_retried_until_attempts_run_out(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    class Flaky(_Kind):
        async def run(self, job: ClaimedJob, ctx: JobContext) -> dict[str, object]:
            raise JobFailed("backend_lost", f"attempt {job.attempts} lost its backend", retryable=True)

    kind = Flaky(f"k-{uuid.uuid4().hex[:6]}")
    worker, job = await _started(store, kind, owner_id, {})
    try:
        await wait_for_terminal(database_url, [job.id], timeout_s=20)
    finally:
        await worker.stop()
    types = await _types(engine, job.id)
    assert types == ["job.queued"] + ["job.started", "job.retrying"] * 2 + ["job.started", "job.failed"]


class _EarlyRelease:
    """Gives its lane back before it ends (as a generation does once ComfyUI is done), then waits for ``finish``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.released = asyncio.Event()
        self.finish = asyncio.Event()

    async def run(self, job: ClaimedJob, ctx: JobContext) -> dict[str, object]:
        ctx.release_lane()
        self.released.set()
        await self.finish.wait()
        return {}


async def test_a_job_that_ends_after_giving_its_lane_back_lets_the_next_one_start(
    store: JobStore, owner_id: uuid.UUID, database_url: str
) -> None:
    kind = _EarlyRelease(f"k-{uuid.uuid4().hex[:6]}")
    # one job at a time, and an idle poll far beyond the wait below: only the first job's end can start the next
    config = _without_idle_poll(kind.name)
    first, second = (NewJob(owner_id=owner_id, kind=kind.name, payload={}) for _ in range(2))
    for job in (first, second):
        await store.create(job)
    worker = Worker(store, {kind.name: kind}, config)
    await worker.start()
    try:
        await asyncio.wait_for(kind.released.wait(), 30)
        kind.finish.set()
        await wait_for_event(database_url, second.id, "job.started", timeout_s=30)
        await wait_for_terminal(database_url, [first.id, second.id])
    finally:
        await worker.stop()


async def test_a_delayed_retry_starts_when_it_is_due_without_waiting_for_the_idle_poll(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, database_url: str
) -> None:
    class FailsOnce(_Kind):
        async def run(self, job: ClaimedJob, ctx: JobContext) -> dict[str, object]:
            if job.attempts == 1:
                raise JobFailed("backend_lost", "lost its backend", retryable=True)
            return {}

    kind = FailsOnce(f"k-{uuid.uuid4().hex[:6]}")
    # The retry waits 0.15-0.45 s; nothing announces when it falls due, and the idle poll is far beyond the wait
    # below: only the due time the queue read told can start it.
    config = _without_idle_poll(kind.name, retry_base_delay_s=0.3)
    worker = Worker(store, {kind.name: kind}, config)
    job = NewJob(owner_id=owner_id, kind=kind.name, payload={})
    await store.create(job)
    await worker.start()
    try:
        await wait_for_event(database_url, job.id, "job.retrying")
        worker.job_available()  # what the app's listener does on the requeue's notification
        await wait_for_terminal(database_url, [job.id], timeout_s=20)
    finally:
        await worker.stop()
    assert await _types(engine, job.id) == ["job.queued", "job.started", "job.retrying", "job.started", "job.succeeded"]
