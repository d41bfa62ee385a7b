"""Property: a client that disconnects anywhere and resumes by Last-Event-ID gets exactly the log.

Writers commit events out of id order (transactions held open for a few ms) and some roll back,
so the feed meets holes that fill later and holes that never fill.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.engine import asyncpg_dsn
from tests.integration.conftest import Service, new_caller
from tests.support.sse import SseEvent, iter_sse

pytestmark = pytest.mark.slow


class _Rollback(Exception):
    pass


@dataclass(frozen=True)
class Write:
    """One event write: which job, how long its transaction stays open, whether it rolls back."""

    job: int
    hold_ms: int
    rollback: bool


WRITES = st.lists(
    st.builds(
        Write,
        job=st.integers(0, 2),
        hold_ms=st.integers(0, 4),
        rollback=st.sampled_from([False] * 8 + [True]),
    ),
    min_size=3,
    max_size=20,
)


@pytest.fixture(scope="module")
async def writer_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(asyncpg_dsn(database_url), min_size=2, max_size=8)
    yield pool
    await pool.close()


async def _write(pool: asyncpg.Pool, job_id: uuid.UUID, owner_id: uuid.UUID, write: Write, kind: str) -> None:
    try:
        async with pool.acquire() as conn, conn.transaction():
            event_id = await conn.fetchval(
                "INSERT INTO job_events (job_id, owner_id, type, data) VALUES ($1, $2, $3, '{}') RETURNING id",
                job_id,
                owner_id,
                kind,
            )
            await conn.execute("SELECT pg_notify('atelier_events', $1)", str(event_id))
            if write.hold_ms:
                await asyncio.sleep(write.hold_ms / 1000)  # keep the transaction open: out-of-order commits
            if write.rollback:
                raise _Rollback
    except _Rollback:
        pass


async def _writers(pool: asyncpg.Pool, jobs: list[uuid.UUID], owner_id: uuid.UUID, writes: list[Write]) -> None:
    async def job_writer(index: int) -> None:
        mine = [w for w in writes if w.job == index]
        await asyncio.gather(*(_write(pool, jobs[index], owner_id, w, "job.progress") for w in mine))
        await _write(pool, jobs[index], owner_id, Write(index, 0, False), "job.succeeded")

    await asyncio.gather(*(job_writer(i) for i in range(len(jobs))))


async def _read_with_disconnects(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], cuts: list[int], wanted_terminals: int
) -> list[SseEvent]:
    """Read, hanging up after each number of events in ``cuts``, resuming from the last id."""
    received: list[SseEvent] = []
    cuts = list(cuts)
    terminals = 0
    while terminals < wanted_terminals:
        # the first connection asks for everything (the all-jobs stream is otherwise live only)
        resume = {"Last-Event-ID": str(received[-1].id) if received else "0"}
        budget = cuts.pop(0) if cuts else None
        async with http.get(url, headers={**headers, **resume}) as response:
            assert response.status == 200
            count = 0
            async for event in iter_sse(response):
                received.append(event)
                terminals += event.event == "job.succeeded"
                count += 1
                if terminals >= wanted_terminals or count == budget:
                    break
    return received


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=WRITES,
    cuts=st.lists(st.integers(1, 6), max_size=4),
    whole_owner=st.booleans(),
)
async def test_resuming_clients_get_exactly_the_missed_events_in_order(
    service: Service,
    engine: AsyncEngine,
    writer_pool: asyncpg.Pool,
    writes: list[Write],
    cuts: list[int],
    whole_owner: bool,
) -> None:
    caller = await new_caller(engine, f"replay-{uuid.uuid4().hex[:8]}")
    owner_id = uuid.UUID(str(caller.owner_id))
    jobs = [uuid.uuid4() for _ in range(3)]
    async with writer_pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO jobs (id, owner_id, kind, payload) VALUES ($1, $2, 'noop-replay', '{}')",
            [(job, owner_id) for job in jobs],
        )
    url = f"{service.url}/v1/events" if whole_owner else f"{service.url}/v1/jobs/{jobs[0]}/events"
    async with aiohttp.ClientSession() as http:
        writing = asyncio.create_task(_writers(writer_pool, jobs, owner_id, writes))
        async with asyncio.timeout(30):
            received = await _read_with_disconnects(http, url, caller.headers, cuts, len(jobs) if whole_owner else 1)
        await writing
    scope = "owner_id = $1" if whole_owner else "job_id = $1"
    async with writer_pool.acquire() as conn:
        stored = [
            r["id"]
            for r in await conn.fetch(
                f"SELECT id FROM job_events WHERE {scope} ORDER BY id", owner_id if whole_owner else jobs[0]
            )
        ]
    ids = [e.id for e in received]
    assert ids == stored, "every committed event exactly once, in id order, across the reconnects"
