"""The event feed holds back events above an id that is still being written, and skips true holes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from orchestrator.db.engine import asyncpg_dsn
from orchestrator.events.feed import EventFeed
from orchestrator.events.listener import PgListener
from orchestrator.events.model import JobEventRecord
from orchestrator.jobs.store import EVENTS_CHANNEL


@pytest.fixture
async def feed(database_url: str) -> AsyncIterator[tuple[EventFeed, asyncio.Queue[int]]]:
    listener = PgListener(asyncpg_dsn(database_url), [EVENTS_CHANNEL])
    await listener.start()
    feed = EventFeed(listener)
    released: asyncio.Queue[int] = asyncio.Queue()

    def release(events: list[JobEventRecord]) -> None:
        for event in events:
            released.put_nowait(event.id)

    feed.on_release(release)
    await feed.start()
    yield feed, released
    await feed.stop()
    await listener.stop()


async def _job(conn: asyncpg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    owner, job = uuid.uuid4(), uuid.uuid4()
    await conn.execute("INSERT INTO owners (id, name) VALUES ($1, $2)", owner, f"feed-{owner}")
    await conn.execute("INSERT INTO jobs (id, owner_id, kind, payload) VALUES ($1, $2, 'feed-test', '{}')", job, owner)
    return owner, job


INSERT = (
    "WITH e AS (INSERT INTO job_events (job_id, owner_id, type, data) VALUES ($1, $2, 'job.progress', '{}') "
    "RETURNING id) SELECT id, pg_notify('atelier_events', id::text) FROM e"
)


async def _released_ids(released: asyncio.Queue[int], wanted: set[int]) -> list[int]:
    """Collect released ids until all of ``wanted`` came; keep only those, in arrival order."""
    seen: list[int] = []
    async with asyncio.timeout(10):
        while not wanted <= set(seen):
            seen.append(await released.get())
    return [i for i in seen if i in wanted]


@pytest.mark.parametrize("ending", ["commit", "rollback"])
async def test_an_id_still_being_written_holds_back_the_ids_above_it(
    database_url: str, feed: tuple[EventFeed, asyncio.Queue[int]], ending: str
) -> None:
    _, released = feed
    slow = await asyncpg.connect(asyncpg_dsn(database_url))
    fast = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        owner, job = await _job(fast)
        # `fast` takes its xid first, `slow` takes the lower event id: the slow writer's xid is then
        # above every completed xid, which is the case a snapshot's xip list does not show.
        fast_transaction = fast.transaction()
        await fast_transaction.start()
        await fast.fetchval("SELECT pg_current_xact_id()")
        transaction = slow.transaction()
        await transaction.start()
        held = (await slow.fetchrow(INSERT, job, owner))["id"]
        above = (await fast.fetchrow(INSERT, job, owner))["id"]
        await fast_transaction.commit()  # `above` is visible while `held` is still open
        assert above > held
        # The feed must not release `above` while `held` may still come: give it every chance to.
        expected = [held, above] if ending == "commit" else [above]
        waiter = asyncio.create_task(_released_ids(released, set(expected)))
        done, _ = await asyncio.wait({waiter}, timeout=0.5)
        assert not done, "an event above an uncommitted id was released"
        await (transaction.commit() if ending == "commit" else transaction.rollback())
        order = await waiter
    finally:
        await slow.close()
        await fast.close()
    assert order == expected


SILENT_INSERT = (  # an event written without its notification: only an offer can release it
    "INSERT INTO job_events (job_id, owner_id, type, data) VALUES ($1, $2, 'job.progress', '{\"n\": 1}') "
    "RETURNING id, job_id, owner_id, type, data, created_at"
)


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[tuple[asyncpg.Connection, uuid.UUID, uuid.UUID]]:
    """A connection of its own, and the owner and job it writes events of."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        owner, job = await _job(conn)
        yield conn, owner, job
    finally:
        await conn.close()


async def test_offered_events_that_continue_the_cursor_are_released_at_once_and_only_once(
    feed: tuple[EventFeed, asyncio.Queue[int]], writer: tuple[asyncpg.Connection, uuid.UUID, uuid.UUID]
) -> None:
    (events, released), (conn, owner, job) = feed, writer
    row = await conn.fetchrow(SILENT_INSERT, job, owner)
    assert events.cursor == row["id"] - 1
    events.offer([JobEventRecord.from_row(row)])
    assert released.get_nowait() == row["id"]  # released in the call, no notification needed
    assert events.cursor == row["id"]
    events.poke(str(row["id"]))  # its notification, come late: nothing to read for it
    assert not events._wake.is_set()
    later = (await conn.fetchrow(INSERT, job, owner))["id"]  # its notification makes the feed read
    assert await _released_ids(released, {later}) == [later]
    assert released.empty(), "the offered event was not released a second time"


async def test_an_offer_above_a_hole_is_left_to_the_read(
    feed: tuple[EventFeed, asyncio.Queue[int]], writer: tuple[asyncpg.Connection, uuid.UUID, uuid.UUID]
) -> None:
    (events, released), (conn, owner, job) = feed, writer
    first = await conn.fetchrow(SILENT_INSERT, job, owner)
    second = await conn.fetchrow(SILENT_INSERT, job, owner)
    events.offer([JobEventRecord.from_row(second)])  # the first is not settled yet: not released
    assert released.empty()
    assert events.cursor == first["id"] - 1
    events.poke()  # as its notification would
    assert await _released_ids(released, {first["id"], second["id"]}) == [first["id"], second["id"]]
    assert released.empty()


async def test_a_notification_during_a_write_of_this_process_waits_for_its_offer_instead_of_reading(
    database_url: str, writer: tuple[asyncpg.Connection, uuid.UUID, uuid.UUID]
) -> None:
    conn, owner, job = writer
    listener = PgListener(asyncpg_dsn(database_url), [EVENTS_CHANNEL])
    await listener.start()
    events = EventFeed(listener)
    released: list[int] = []
    more = asyncio.Event()

    def release(batch: list[JobEventRecord]) -> None:
        released.extend(event.id for event in batch)
        more.set()

    events.on_release(release)
    heard: dict[int, asyncio.Event] = {}
    await events.start()
    listener.on(EVENTS_CHANNEL, lambda payload: heard.setdefault(int(payload), asyncio.Event()).set())
    try:
        reads = events.reads
        with events.writing():
            row = await conn.fetchrow(INSERT, job, owner)  # committed and notified while "our" write is under way
            await heard.setdefault(row["id"], asyncio.Event()).wait()  # the feed was poked before this handler
            record = await conn.fetchrow("SELECT * FROM job_events WHERE id = $1", row["id"])
            events.offer([JobEventRecord.from_row(record)])
        later = (await conn.fetchrow(INSERT, job, owner))["id"]  # no write of ours under way: read for it
        await heard.setdefault(later, asyncio.Event()).wait()
        async with asyncio.timeout(10):
            while later not in released:
                more.clear()
                await more.wait()
        assert released == [row["id"], later]
        assert events.reads == reads + 1  # only for the later one
    finally:
        await events.stop()
        await listener.stop()
