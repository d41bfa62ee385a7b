"""events() follows a job across connections the network drops mid-event: no gap, no duplicate."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text

from atelier_client import AsyncClient, Client
from tests.integration.client.conftest import ClientService
from tests.support.proxy import CuttingProxy


async def _stored_events(svc: ClientService, job_id: uuid.UUID) -> list[tuple[int, str]]:
    async with svc.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, type FROM job_events WHERE job_id = :j ORDER BY id"), {"j": job_id})
        return [(row.id, row.type) for row in rows]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_async_events_resume_exactly_after_the_connection_drops_mid_stream(
    client_service: ClientService, api_key: str
) -> None:
    cuts = [3, 5, 4]  # connection k is torn in the middle of its (cuts[k] + 1)-th event
    async with (
        CuttingProxy(_port(client_service.url), cuts) as proxy,
        AsyncClient(client_service.url, api_key=api_key) as direct,
        AsyncClient(proxy.url, api_key=api_key) as flaky,
    ):
        job = await direct.create_noop_job(steps=25, step_ms=15)
        received = [(e.id, e.type) async for e in flaky.events(job.id)]
    stored = await _stored_events(client_service, job.id)
    assert received == stored  # every event, once, in order
    assert received[-1][1] == "job.succeeded"
    # each reconnect asked for exactly what followed the last complete event it had
    resumed_after = [int(v) for v in proxy.last_event_ids()[1:] if v is not None]
    assert len(proxy.requests) == len(cuts) + 1
    ends = [sum(c for c in cuts[: k + 1]) for k in range(len(cuts))]
    assert resumed_after == [received[end - 1][0] for end in ends]


async def test_sync_events_resume_too_and_wait_returns_the_finished_job(
    client_service: ClientService, api_key: str
) -> None:
    async with CuttingProxy(_port(client_service.url), [2, 2]) as proxy:

        def follow() -> tuple[list[tuple[int, str]], str]:
            with Client(client_service.url, api_key=api_key) as direct, Client(proxy.url, api_key=api_key) as flaky:
                job = direct.create_noop_job(steps=8, step_ms=10)
                seen: list[tuple[int, str]] = []
                done = flaky.wait(job.id, on_event=lambda e: seen.append((e.id, e.type)))
                return seen, f"{done.id}:{done.status}"

        seen, done = await asyncio.to_thread(follow)
    job_id = uuid.UUID(done.split(":")[0])
    assert done.endswith(":succeeded")
    assert seen == await _stored_events(client_service, job_id)
    assert len([r for r in proxy.requests if b"/events " in r]) == 3  # two cuts, two resumptions


async def test_a_stream_that_is_already_over_answers_204_and_ends(client_service: ClientService, api_key: str) -> None:
    async with AsyncClient(client_service.url, api_key=api_key) as atelier:
        job = await atelier.create_noop_job(steps=2)
        events = [e async for e in atelier.events(job.id)]
        assert events[-1].is_terminal
        again = [e async for e in atelier.events(job.id, after=events[-1].id)]
    assert again == []
