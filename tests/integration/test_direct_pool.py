"""The job store's asyncpg pool gives each connection back in the background: the next statement still gets
one, whatever the last one did (answered, failed, was cancelled), and closing waits for what is being given
back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from orchestrator.db.direct import DirectPool, Sql
from orchestrator.db.engine import asyncpg_dsn

ONE = Sql("SELECT :n::int AS n")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[DirectPool]:
    """A pool of one connection: a statement that was not given its connection back would wait forever."""
    direct = DirectPool(asyncpg_dsn(database_url), max_size=1)
    yield direct
    await direct.close()


async def test_statements_in_a_row_share_the_one_connection(pool: DirectPool) -> None:
    async with asyncio.timeout(10):
        for n in range(20):
            assert (await pool.fetch(ONE, {"n": n}))[0]["n"] == n
            assert (await pool.fetchrow(ONE, {"n": n}) or {})["n"] == n
        async with pool.transaction() as conn:
            assert await conn.fetchval("SELECT 7") == 7
        assert (await pool.fetch(ONE, {"n": 8}))[0]["n"] == 8


async def test_a_failed_statement_gives_its_connection_back(pool: DirectPool) -> None:
    with pytest.raises(asyncpg.DivisionByZeroError):
        await pool.fetch(Sql("SELECT 1 / :n::int"), {"n": 0})
    with pytest.raises(asyncpg.DivisionByZeroError):
        async with pool.transaction() as conn:
            await conn.execute("SELECT 1 / 0")
    async with asyncio.timeout(10):
        assert (await pool.fetch(ONE, {"n": 3}))[0]["n"] == 3


async def test_a_cancelled_statement_gives_its_connection_back_once_the_server_stopped_it(
    pool: DirectPool, database_url: str
) -> None:
    sleeping = asyncio.create_task(pool.fetch(Sql("SELECT pg_sleep(:s::float8)"), {"s": 30}))
    async with asyncio.timeout(10):
        while True:  # until the sleep runs on the server (no signal says so: its activity is polled)
            probe = await asyncpg.connect(asyncpg_dsn(database_url))
            try:
                running = await probe.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'"
                )
            finally:
                await probe.close()
            if running:
                break
            await asyncio.sleep(0.05)
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    async with asyncio.timeout(10):  # far below the 30 s the sleep asked for
        assert (await pool.fetch(ONE, {"n": 5}))[0]["n"] == 5


async def test_close_waits_for_the_connections_being_given_back(database_url: str) -> None:
    direct = DirectPool(asyncpg_dsn(database_url), max_size=2)
    await asyncio.gather(*(direct.fetch(ONE, {"n": n}) for n in range(2)))
    await direct.close()  # the two releases were still under way: close waits for them, then closes the pool
    assert (await direct.fetch(ONE, {"n": 1}))[0]["n"] == 1  # a later statement opens it again
    await direct.close()
