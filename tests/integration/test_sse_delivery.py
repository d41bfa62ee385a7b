"""SSE delivery: slow clients are dropped without holding others up; disconnects are noticed at once."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from orchestrator.app_keys import BROADCASTER, ENGINE
from orchestrator.db.engine import asyncpg_dsn
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, Service, new_caller
from tests.support.service import running_app
from tests.support.sse import iter_sse


@pytest.fixture
async def tight_service(service_settings: Settings) -> AsyncIterator[Service]:
    """A second service whose SSE clients may only fall 64 KiB behind."""
    settings = service_settings.model_copy(update={"sse_buffer_limit_bytes": 64 * 1024, "worker_enabled": False})
    async with running_app(settings) as (app, url):
        yield Service(app=app, url=url, settings=settings)


async def _insert_events(database_url: str, job_id: uuid.UUID, owner_id: uuid.UUID, count: int, size: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        padding = json.dumps({"pad": "x" * size})
        for start in range(0, count, 50):
            async with conn.transaction():
                for _ in range(min(50, count - start)):
                    event_id = await conn.fetchval(
                        "INSERT INTO job_events (job_id, owner_id, type, data) "
                        "VALUES ($1, $2, 'job.progress', $3::jsonb) RETURNING id",
                        job_id,
                        owner_id,
                        padding,
                    )
                await conn.execute("SELECT pg_notify('atelier_events', $1)", str(event_id))
        await conn.execute(
            "WITH e AS (INSERT INTO job_events (job_id, owner_id, type, data) "
            "VALUES ($1, $2, 'job.succeeded', '{}') RETURNING id) SELECT pg_notify('atelier_events', id::text) FROM e",
            job_id,
            owner_id,
        )
    finally:
        await conn.close()


async def _new_job(database_url: str, owner_id: uuid.UUID) -> uuid.UUID:
    job_id = uuid.uuid4()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO jobs (id, owner_id, kind, payload, status) VALUES ($1, $2, 'external', '{}', 'running')",
            job_id,
            owner_id,
        )
    finally:
        await conn.close()
    return job_id


async def _stalled_client(url: str, path: str, headers: dict[str, str]) -> socket.socket:
    """A client that asks for the stream and never reads (tiny receive buffer)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    await asyncio.get_running_loop().sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    return sock


async def _subscribers_become(service: Service, count: int) -> None:
    async with asyncio.timeout(10):
        await service.app[BROADCASTER].wait_for_subscriber_count(count)


async def test_a_stalled_client_is_dropped_and_never_holds_up_a_reading_one(tight_service: Service) -> None:
    caller = await new_caller(tight_service.app[ENGINE], f"slow-{uuid.uuid4().hex[:6]}")
    owner_id = uuid.UUID(str(caller.owner_id))
    job_id = await _new_job(tight_service.settings.database_url, owner_id)
    path = f"/v1/jobs/{job_id}/events"
    stalled = await _stalled_client(tight_service.url, path, caller.headers)
    try:
        received = await _read_while_the_stalled_one_sits(tight_service, caller, job_id, owner_id, path)
    finally:
        stalled.close()
    assert received == 601, "the reading client got every event while the stalled one sat on ~10 MB"
    await _subscribers_become(tight_service, 0)
    metrics = (await _metrics(tight_service)).splitlines()
    assert "atelier_sse_dropped_subscribers_total 1.0" in metrics


async def _read_while_the_stalled_one_sits(
    service: Service, caller: Caller, job_id: uuid.UUID, owner_id: uuid.UUID, path: str
) -> int:
    received = 0
    headers = caller.headers
    async with aiohttp.ClientSession() as http, http.get(service.url + path, headers=headers) as stream:
        await _subscribers_become(service, 2)
        writer = asyncio.create_task(_insert_events(service.settings.database_url, job_id, owner_id, 600, 16_000))
        async with asyncio.timeout(60):
            async for event in iter_sse(stream):
                received += 1
                if event.event == "job.succeeded":
                    break
        await writer
    return received


async def _metrics(service: Service) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{service.url}/metrics") as response:
        return await response.text()


async def test_a_disconnect_is_noticed_without_waiting_for_the_next_event(service: Service) -> None:
    caller = await new_caller(service.app[ENGINE], f"gone-{uuid.uuid4().hex[:6]}")
    job_id = await _new_job(service.settings.database_url, uuid.UUID(str(caller.owner_id)))
    before = service.app[BROADCASTER].subscriber_count
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{service.url}/v1/jobs/{job_id}/events", headers=caller.headers)
        assert response.status == 200
        await _subscribers_become(service, before + 1)
        response.close()  # hang up; the job stays silent
    await _subscribers_become(service, before)
