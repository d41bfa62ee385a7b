"""Issue 8, item 5: Postgres restarts in immediate mode (crash recovery) while jobs are being submitted.

Every answer is 202 or 503 (never a 500: CannotConnectNowError while the database starts up, closed
connections, refused connects are "unavailable, retry"), every 202's job exists once the database is
back, and no background task of the service leaves an exception unretrieved. The cluster is the test's
own (tests/support/pg_cluster.py), never the shared one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from orchestrator.db.engine import asyncpg_dsn, migrate
from tests.support.pg_cluster import OwnCluster, why_unavailable
from tests.support.service import free_port, spawn_atelier, wait_until_healthy

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow
CLIENTS = 8
BEFORE, AFTER = 40, 40  # accepted jobs before the restart, and after it


@pytest.fixture
def own_cluster() -> Iterator[OwnCluster]:
    """A started cluster of this test's own."""
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(f"NO OWN POSTGRES CLUSTER: {reason}")
    cluster = OwnCluster.create()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


class Load:
    """Clients that submit noop jobs until told to stop; every answer is kept with when it was sent."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, int, str | None]] = []
        self.accepted = 0
        self.stop = asyncio.Event()
        self.progress = asyncio.Event()

    async def client(self, http: aiohttp.ClientSession) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            body = {"kind": "noop", "payload": {"steps": 1}}
            async with http.post(f"{self.url}/v1/jobs", json=body) as response:
                answer = await response.json(content_type=None)
                job_id = answer.get("id") if response.status == 202 else None
                self.answers.append((sent, response.status, job_id))
            self.accepted += response.status == 202
            self.progress.set()

    async def until_accepted(self, count: int) -> None:
        while self.accepted < count:
            self.progress.clear()
            await self.progress.wait()


async def test_submits_across_a_crash_restart_are_202_or_503_and_every_202_is_kept(
    own_cluster: OwnCluster, tmp_path: Path
) -> None:
    await migrate(own_cluster.url)
    port = free_port()
    env = {
        "ATELIER_DATABASE_URL": own_cluster.url,
        "ATELIER_PORT": str(port),
        "ATELIER_AUTH": "disabled",
        "ATELIER_HEARTBEAT_INTERVAL_S": "0.2",
        "ATELIER_HEARTBEAT_TIMEOUT_S": "2",
        "ATELIER_IDLE_POLL_S": "0.5",
        "ATELIER_LOG_LEVEL": "INFO",
        "ATELIER_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "ATELIER_VAR_DIR": str(tmp_path / "var"),
    }
    service = spawn_atelier(["serve"], env, tmp_path / "service.log")
    url = f"http://127.0.0.1:{port}"
    load = Load(url)
    try:
        await wait_until_healthy(url, service)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            clients = [asyncio.create_task(load.client(http)) for _ in range(CLIENTS)]
            await load.until_accepted(BEFORE)
            restart_began = time.monotonic()
            await asyncio.to_thread(own_cluster.restart_immediately)
            restart_ended = time.monotonic()
            await load.until_accepted(load.accepted + AFTER)
            load.stop.set()
            await asyncio.gather(*clients)
            async with http.get(f"{url}/metrics") as response:
                metrics = await response.text()
    finally:
        service.terminate()
        await asyncio.to_thread(service.wait, 60)
    statuses = Counter(status for _, status, _ in load.answers)
    log.info("answers across the restart: %s", dict(statuses))
    assert set(statuses) <= {202, 503}, statuses
    during = [a for a in load.answers if restart_began <= a[0] <= restart_ended]
    assert during, "no request was sent while the database restarted"
    accepted = [uuid.UUID(job_id) for _, status, job_id in load.answers if status == 202 and job_id]
    conn = await asyncpg.connect(asyncpg_dsn(own_cluster.url))
    try:
        kept = await conn.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])", accepted)
    finally:
        await conn.close()
    assert kept == len(accepted), f"{len(accepted) - kept} accepted jobs are missing after the restart"
    service_log = (tmp_path / "service.log").read_text()
    assert "never retrieved" not in service_log
    assert 'status="500"' not in metrics
