"""Issue 8, item 9: the smaller gaps between the service and its documented contract."""

from __future__ import annotations

import uuid

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.app_keys import BROADCASTER, METRICS
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.store import JobStore
from tests.integration.conftest import Caller, Service
from tests.support.db import wait_for_terminal
from tests.support.sse import iter_sse


async def _noop(http: aiohttp.ClientSession, service: Service, caller: Caller) -> uuid.UUID:
    body = {"kind": "noop", "payload": {"steps": 1}}
    async with http.post(f"{service.url}/v1/jobs", json=body, headers=caller.headers) as response:
        assert response.status == 202
        return uuid.UUID((await response.json())["id"])


async def test_the_all_jobs_stream_is_live_unless_the_client_resumes(
    service: Service, http: aiohttp.ClientSession, caller: Caller
) -> None:
    earlier = await _noop(http, service, caller)
    await wait_for_terminal(service.settings.database_url, [earlier])
    async with http.get(f"{service.url}/v1/events", headers=caller.headers) as live:
        assert live.status == 200
        later = await _noop(http, service, caller)
        first = await anext(iter_sse(live))
    assert first.data["job_id"] == str(later), "history was replayed without Last-Event-ID"
    async with http.get(f"{service.url}/v1/events?after=0", headers=caller.headers) as replay:
        first = await anext(iter_sse(replay))
    assert first.data["job_id"] == str(earlier)
    assert first.event == "job.queued"


def _count(service: Service, status: str) -> float:
    counter = service.app[METRICS].http_requests.labels("GET", "/v1/events", status)
    return float(counter._value.get())


async def test_a_client_leaving_an_event_stream_is_not_counted_as_a_server_error(
    service: Service, http: aiohttp.ClientSession, caller: Caller
) -> None:
    broadcaster = service.app[BROADCASTER]
    before = broadcaster.subscriber_count
    errors, closed = _count(service, "500"), _count(service, "499")
    async with http.get(f"{service.url}/v1/events", headers=caller.headers) as stream:
        assert stream.status == 200
        await broadcaster.wait_for_subscriber_count(before + 1)
    await broadcaster.wait_for_subscriber_count(before)  # the handler ends right after it unsubscribes
    assert _count(service, "500") == errors
    assert _count(service, "499") == closed + 1


async def test_cancelling_a_queued_job_answers_202_as_documented(
    service: Service, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    job = NewJob(owner_id=caller.owner_id, kind="unclaimed-here", payload={})  # type: ignore[arg-type]
    async with JobStore(engine) as store:
        await store.create(job)  # a kind no worker runs: it stays queued until cancelled
    async with http.post(f"{service.url}/v1/jobs/{job.id}/cancel", headers=caller.headers) as response:
        assert response.status == 202
        assert (await response.json())["status"] == "cancelled"
    async with http.get(f"{service.url}/openapi.json") as response:
        documented = (await response.json())["paths"]["/v1/jobs/{id}/cancel"]["post"]["responses"]
    assert "202" in documented
    assert "200" not in documented


async def test_every_authenticated_operation_documents_401_and_503(
    service: Service, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{service.url}/openapi.json") as response:
        doc = await response.json()
    missing = [
        f"{method.upper()} {path}"
        for path, methods in doc["paths"].items()
        for method, op in methods.items()
        if op.get("security") != [] and not {"401", "503"} <= set(op["responses"])
    ]
    assert not missing
    assert "401" in doc["paths"]["/v1/backends"]["get"]["responses"]
    assert "401" in doc["paths"]["/v1/templates/{name}"]["get"]["responses"]
