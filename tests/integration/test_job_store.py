"""The job state machine as the database enforces it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import IllegalTransition
from orchestrator.events.model import JobEventRecord
from orchestrator.events.types import EventType
from orchestrator.jobs.outcome import RowsWrite
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.states import ALLOWED_FROM, Status
from orchestrator.jobs.store import JobLost, JobStore


async def _job_in(store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, status: Status) -> uuid.UUID:
    """A job forced into ``status`` (bypassing the state machine, to set up each case)."""
    job = NewJob(owner_id=owner_id, kind=f"test-{uuid.uuid4().hex[:6]}", payload={})
    await store.create(job)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET status = :s, worker_id = 'w1' WHERE id = :id"), {"s": status.value, "id": job.id}
        )
    return job.id


async def _events(engine: AsyncEngine, job_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT type FROM job_events WHERE job_id = :id ORDER BY id"), {"id": job_id})
        return [r[0] for r in rows]


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Status, Status)))
async def test_every_transition_is_allowed_or_rejected(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID, source: Status, target: Status
) -> None:
    job_id = await _job_in(store, engine, owner_id, source)
    events_before = await _events(engine, job_id)
    if source in ALLOWED_FROM[target]:
        await store.transition(job_id, target, worker_id="w1")
        assert await store.status_of(job_id) is target
        assert len(await _events(engine, job_id)) == len(events_before) + 1
    else:
        with pytest.raises(IllegalTransition):
            await store.transition(job_id, target, worker_id="w1")
        assert await store.status_of(job_id) is source
        assert await _events(engine, job_id) == events_before


def test_terminal_states_have_no_way_out() -> None:
    for terminal in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED):
        assert not any(terminal in sources for sources in ALLOWED_FROM.values())


async def test_create_writes_the_queued_event(store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID) -> None:
    job = NewJob(owner_id=owner_id, kind=f"unclaimed-{uuid.uuid4().hex[:6]}", payload={"steps": 1})
    await store.create(job)
    assert await store.status_of(job.id) is Status.QUEUED
    assert await _events(engine, job.id) == [EventType.QUEUED]


async def test_concurrent_cancel_and_finish_end_in_exactly_one_terminal_state(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    outcomes: list[Status] = []
    for _ in range(40):
        job_id = await _job_in(store, engine, owner_id, Status.RUNNING)

        async def attempt(target: Status, job_id: uuid.UUID = job_id) -> Status | None:
            try:
                await store.transition(job_id, target, worker_id="w1")
                return target
            except IllegalTransition:
                return None

        results = await asyncio.gather(attempt(Status.SUCCEEDED), attempt(Status.CANCELLED))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await store.status_of(job_id) is winners[0]
        terminal_events = [e for e in await _events(engine, job_id) if e in ("job.succeeded", "job.cancelled")]
        assert terminal_events == [f"job.{winners[0].value}"]
        outcomes.append(winners[0])
    assert outcomes  # every round had one winner


async def test_a_worker_that_lost_the_job_cannot_write(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    job_id = await _job_in(store, engine, owner_id, Status.RUNNING)
    with pytest.raises(JobLost):
        await store.record(job_id, "someone-else", EventType.PROGRESS, {"step": 1})
    with pytest.raises(IllegalTransition):
        await store.transition(job_id, Status.SUCCEEDED, worker_id="someone-else")
    await store.record(job_id, "w1", EventType.PROGRESS, {"step": 1})


async def test_cancel_request_on_queued_is_immediate_and_on_running_is_cooperative(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    queued = await _job_in(store, engine, owner_id, Status.QUEUED)
    assert await store.request_cancel(queued, owner_id) is Status.CANCELLED
    running = await _job_in(store, engine, owner_id, Status.RUNNING)
    assert await store.request_cancel(running, owner_id) is Status.RUNNING
    assert await store.heartbeat("w1", [running]) == {running: True}
    done = await _job_in(store, engine, owner_id, Status.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        await store.request_cancel(done, owner_id)


async def _stale(engine: AsyncEngine, job_id: uuid.UUID, **columns: object) -> None:
    sets = ", ".join(f"{name} = :{name}" for name in columns)
    async with engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE jobs SET heartbeat_at = now() - interval '1 hour', {sets} WHERE id = :id"),
            {"id": job_id, **columns},
        )


async def test_the_reaper_requeues_fails_or_cancels_by_what_the_job_has_left(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    retry = await _job_in(store, engine, owner_id, Status.RUNNING)
    await _stale(engine, retry, attempts=1, max_attempts=3)
    spent = await _job_in(store, engine, owner_id, Status.RUNNING)
    await _stale(engine, spent, attempts=3, max_attempts=3)
    wanted_dead = await _job_in(store, engine, owner_id, Status.RUNNING)
    await _stale(engine, wanted_dead, attempts=1, cancel_requested=True)
    fresh = await _job_in(store, engine, owner_id, Status.RUNNING)
    await store.heartbeat("w1", [fresh])

    # The in-process service's own reaper may get to some of them first: the outcome is what counts.
    reaped = {r.job_id: r.status for r in await store.reap(timeout_s=60)}

    assert fresh not in reaped
    assert await store.status_of(retry) is Status.QUEUED
    assert await store.status_of(spent) is Status.FAILED
    assert await store.status_of(wanted_dead) is Status.CANCELLED
    assert (await _events(engine, retry))[-1] == "job.retrying"
    assert (await _events(engine, spent))[-1] == "job.failed"
    assert (await _events(engine, wanted_dead))[-1] == "job.cancelled"
    assert await store.status_of(fresh) is Status.RUNNING


async def test_a_burst_of_creates_is_committed_in_batches_and_a_bad_job_fails_alone(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    kind = f"burst-{uuid.uuid4().hex[:6]}"
    good = [NewJob(owner_id=owner_id, kind=kind, payload={"n": n}) for n in range(300)]
    orphan = NewJob(owner_id=uuid.uuid4(), kind=kind, payload={})  # no such owner: violates the FK
    results = await asyncio.gather(
        *(store.create(j) for j in [*good[:150], orphan, *good[150:]]), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    event_ids = [r for r in results if not isinstance(r, BaseException)]
    assert len(set(event_ids)) == 300
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT j.payload->>'n' AS n, e.id FROM jobs j JOIN job_events e ON e.job_id = j.id WHERE j.kind = :k"
            ),
            {"k": kind},
        )
        stored = {int(r.n): r.id for r in rows}
    assert stored == {n: event_ids[n] for n in range(300)}, "each caller got its own job's event id"


async def test_success_commits_artifacts_and_rows_with_the_terminal_event_or_nothing(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    rows = RowsWrite(
        "INSERT INTO webhook_deliveries (job_id, url, job_status) SELECT job.id, :note, 'succeeded' FROM job "
        "RETURNING id",
        {"note": "written-with"},
    )
    job_id = await _job_in(store, engine, owner_id, Status.RUNNING)
    with pytest.raises(IllegalTransition):
        await store.succeed(job_id, "not-the-worker", {"n": 1}, artifacts=[{"kind": "image"}], rows=rows)
    assert await _events(engine, job_id) == ["job.queued"], "nothing written for a job that is not ours"

    await store.succeed(
        job_id, "w1", {"n": 1}, artifacts=[{"kind": "image", "i": 0}, {"kind": "image", "i": 1}], rows=rows
    )
    assert await _events(engine, job_id) == ["job.queued", "job.artifact", "job.artifact", "job.succeeded"]
    async with engine.connect() as conn:
        written = await conn.scalar(text("SELECT url FROM webhook_deliveries WHERE job_id = :id"), {"id": job_id})
        order = (
            (
                await conn.execute(
                    text("SELECT data->>'i' FROM job_events WHERE job_id = :id AND type = 'job.artifact' ORDER BY id"),
                    {"id": job_id},
                )
            )
            .scalars()
            .all()
        )
    assert written == "written-with"
    assert order == ["0", "1"]


class _Collected:
    """Keeps what the store hands over."""

    def __init__(self, into: list[JobEventRecord]) -> None:
        self.offer = into.extend
        self.writing = contextlib.nullcontext


async def test_every_write_hands_the_events_it_committed_over_as_stored(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    handed: list[JobEventRecord] = []
    store.on_committed(_Collected(handed))
    try:
        job = NewJob(owner_id=owner_id, kind="noop", payload={}, priority=3)
        await store.create(job)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE jobs SET status = 'running', worker_id = 'w1' WHERE id = :id"), {"id": job.id}
            )
        await store.record(job.id, "w1", EventType.PROGRESS, {"step": 1, "total": 2})
        await store.succeed(job.id, "w1", {"n": 1}, artifacts=[{"kind": "image"}])
    finally:
        store.on_committed(None)
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT id, job_id, owner_id, type, data, created_at FROM job_events "
                        "WHERE job_id = :id ORDER BY id"
                    ),
                    {"id": job.id},
                )
            )
            .mappings()
            .all()
        )
    assert handed == [JobEventRecord.from_row(row) for row in rows]  # the stored rows, in order, each once
    assert [event.type for event in handed] == ["job.queued", "job.progress", "job.artifact", "job.succeeded"]
    assert [event.frame for event in handed] == [JobEventRecord.from_row(row).frame for row in rows]


async def test_several_events_of_a_running_job_are_written_together_in_order(
    store: JobStore, engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    job_id = await _job_in(store, engine, owner_id, Status.RUNNING)
    ticks = [{"step": n, "total": 3} for n in (1, 2, 3)]
    with pytest.raises(JobLost):  # not ours: none of them is written
        await store.record_many(job_id, "someone-else", [(EventType.PROGRESS, tick) for tick in ticks])
    assert await _events(engine, job_id) == ["job.queued"]
    written = [(EventType.PROGRESS, ticks[0]), (EventType.PREVIEW, {"step": 1}), (EventType.PROGRESS, ticks[1])]
    written.append((EventType.PROGRESS, ticks[2]))
    ids = await store.record_many(job_id, "w1", written)
    assert ids == list(range(ids[0], ids[0] + 4))  # consecutive, in the order given
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, type, data FROM job_events WHERE id = ANY(:ids) ORDER BY id"),
                                   {"ids": ids})).all()  # fmt: skip
        progress = await conn.scalar(text("SELECT progress FROM jobs WHERE id = :id"), {"id": job_id})
    assert [(row.type, row.data) for row in rows] == [(t.value, d) for t, d in written]
    assert progress == ticks[2]  # the job's latest progress is the last tick
    await store.record_many(job_id, "w1", [(EventType.PREVIEW, {"step": 4})])
    async with engine.connect() as conn:  # an event batch without progress leaves the job's progress alone
        assert await conn.scalar(text("SELECT progress FROM jobs WHERE id = :id"), {"id": job_id}) == ticks[2]
