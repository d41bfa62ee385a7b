"""Waiting on the database itself (LISTEN), instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.db.engine import asyncpg_dsn, migrate
from orchestrator.events.listener import LISTENER_APPLICATION_NAME

TERMINAL = ["succeeded", "failed", "cancelled"]


async def wait_until(
    database_url: str, query: str, *args: Any, timeout_s: float = 60.0, recheck_s: float | None = None
) -> None:
    """Return once ``query`` yields true; re-checked whenever an event is written (NOTIFY), and every
    ``recheck_s`` when given (for a state that no notification announces)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    woke = asyncio.Event()
    await conn.add_listener("atelier_events", lambda *_: woke.set())
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                woke.clear()
                if await conn.fetchval(query, *args):
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(recheck_s):
                        await woke.wait()
    finally:
        await conn.close()


async def wait_for_terminal(database_url: str, job_ids: Collection[uuid.UUID], timeout_s: float = 60.0) -> None:
    """Return when every job has reached a terminal status."""
    await wait_until(
        database_url,
        "SELECT NOT EXISTS (SELECT 1 FROM jobs WHERE id = ANY($1::uuid[]) AND NOT (status = ANY($2::text[])))",
        list(job_ids),
        TERMINAL,
        timeout_s=timeout_s,
    )


async def wait_for_event(database_url: str, job_id: uuid.UUID, event_type: str, timeout_s: float = 30.0) -> None:
    """Return once the job has an event of this type."""
    await wait_until(
        database_url,
        "SELECT EXISTS (SELECT 1 FROM job_events WHERE job_id = $1 AND type = $2)",
        job_id,
        event_type,
        timeout_s=timeout_s,
    )


async def wait_for_listeners(database_url: str, count: int, timeout_s: float = 60.0) -> None:
    """Return once ``count`` ``atelier`` processes hold their LISTEN connection to this database.

    Polled: a process opening its LISTEN connection notifies nobody, and Postgres's own view of its sessions
    is the readiness signal a child process gives.
    """
    name = make_url(database_url).database
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                listening = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
                    name,
                    LISTENER_APPLICATION_NAME,
                )
                if listening >= count:
                    return
                await asyncio.sleep(0.05)
    finally:
        await conn.close()


SERVER_URL = os.environ.get("ATELIER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


async def drop_database(server_url: str, name: str) -> None:
    """Drop a test database, disconnecting whoever is still on it."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def scratch_database(purpose: str) -> Iterator[str]:
    """A freshly migrated database of its own (named after ``purpose``), dropped afterwards.

    Synchronous on purpose: fixtures use it outside the event loop.
    """
    name = f"atelier_test_{os.getpid()}_{uuid.uuid4().hex[:8]}_{purpose}"
    url = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(migrate(url))
    try:
        yield url
    finally:
        asyncio.run(drop_database(SERVER_URL, name))
