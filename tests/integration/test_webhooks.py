"""Webhooks: a finished job is POSTed to its webhook_url, signed, and retried until it gets through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from orchestrator.jobs.webhooks import signature
from tests.integration.conftest import WEBHOOK_SECRET, Caller, Service


@dataclass
class Receiver:
    """A webhook endpoint that fails the first ``failures`` calls, then records deliveries."""

    url: str = ""
    failures: int = 0
    calls: int = 0
    received: asyncio.Queue[tuple[dict[str, object], str]] = field(default_factory=asyncio.Queue)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        if self.calls <= self.failures:
            return web.Response(status=500)
        await self.received.put((json.loads(body), request.headers.get("X-Atelier-Signature", "")))
        assert request.headers["X-Atelier-Signature"] == signature(WEBHOOK_SECRET, body)
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
    yield hook
    await runner.cleanup()


async def _create(service: Service, caller: Caller, hook: Receiver, **payload: object) -> str:
    body = {"kind": "noop", "payload": payload, "webhook_url": hook.url}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{service.url}/v1/jobs", json=body, headers=caller.headers) as response,
    ):
        assert response.status == 202
        return str((await response.json())["id"])


async def test_a_finished_job_is_posted_signed(service: Service, caller: Caller, receiver: Receiver) -> None:
    job_id = await _create(service, caller, receiver, steps=1)
    async with asyncio.timeout(15):
        delivery, _ = await receiver.received.get()
    assert delivery["event"] == "job.succeeded"
    assert delivery["job"]["id"] == job_id
    assert delivery["job"]["status"] == "succeeded"


async def test_failed_deliveries_are_retried(service: Service, caller: Caller, receiver: Receiver) -> None:
    receiver.failures = 2
    job_id = await _create(service, caller, receiver, steps=1)
    async with asyncio.timeout(20):
        delivery, _ = await receiver.received.get()
    assert delivery["job"]["id"] == job_id
    assert receiver.calls == 3


async def test_a_cancelled_job_is_posted_too(service: Service, caller: Caller, receiver: Receiver) -> None:
    job_id = await _create(service, caller, receiver, steps=500, step_ms=20)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{service.url}/v1/jobs/{job_id}/cancel", headers=caller.headers) as response,
    ):
        assert response.status in (200, 202)
    async with asyncio.timeout(15):
        delivery, _ = await receiver.received.get()
    assert delivery["event"] == "job.cancelled"
