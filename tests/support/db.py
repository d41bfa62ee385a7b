"""Waiting on the database itself (LISTEN), instead of sleeping."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

import asyncpg

from orchestrator.db.engine import asyncpg_dsn

TERMINAL = ["succeeded", "failed", "cancelled"]


async def wait_for_terminal(database_url: str, job_ids: Collection[uuid.UUID], timeout_s: float = 60.0) -> None:
    """Return when every job has reached a terminal status; woken by the event notifications."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    woke = asyncio.Event()
    await conn.add_listener("atelier_events", lambda *_: woke.set())
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                woke.clear()
                left = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND NOT (status = ANY($2::text[]))",
                    list(job_ids),
                    TERMINAL,
                )
                if left == 0:
                    return
                await woke.wait()
    finally:
        await conn.close()
