"""Browsers as clients: CORS for configured origins, and EventSource on a job's events from another origin.

A page on its own origin (another loopback port) follows a job with ``EventSource``: it must see every
event once, in order, and then stop — the server closes the stream after the terminal event, the browser
reconnects once with ``Last-Event-ID`` at that event, gets 204 and never reconnects again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.settings import Settings
from tests.integration.conftest import Caller, new_caller
from tests.support.browser import chromium_page
from tests.support.db import wait_for_terminal
from tests.support.service import running_app

PAGE = """<!doctype html><html><body><script>
window.seen = []; window.opens = 0; window.errors = 0;
window.follow = (url) => {
  const source = new EventSource(url);
  window.source = source;
  source.onopen = () => { window.opens += 1; };
  source.onerror = () => { window.errors += 1; };
  for (const type of ["job.queued", "job.started", "job.progress", "job.succeeded", "job.failed", "job.cancelled"]) {
    source.addEventListener(type, (e) => window.seen.push({id: Number(e.lastEventId), type: e.type}));
  }
};
</script></body></html>"""


@pytest.fixture
async def page_origin() -> AsyncIterator[str]:
    """A tiny site on another loopback port: the browser page's origin."""
    app = web.Application()

    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.fixture
async def cors_service(service_settings: Settings, page_origin: str) -> AsyncIterator[str]:
    """The service allowing the page's origin, with a short reconnect hint."""
    settings = service_settings.model_copy(update={"cors_origins": [page_origin], "sse_retry_ms": 200})
    async with running_app(settings) as (_app, url):
        yield url


async def _noop(http: aiohttp.ClientSession, url: str, caller: Caller, **payload: Any) -> str:
    body = {"kind": "noop", "payload": payload}
    async with http.post(f"{url}/v1/jobs", json=body, headers=caller.headers) as response:
        assert response.status == 202
        return str((await response.json())["id"])


async def test_cors_preflight_and_answers_for_listed_origins_only(
    cors_service: str, page_origin: str, http: aiohttp.ClientSession, caller: Caller
) -> None:
    preflight = {
        "Origin": page_origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with http.options(f"{cors_service}/v1/jobs", headers=preflight) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == page_origin
        assert "AUTHORIZATION" in response.headers["Access-Control-Allow-Headers"].upper()
    async with http.get(f"{cors_service}/v1/jobs", headers={**caller.headers, "Origin": page_origin}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == page_origin
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
    stranger = {**caller.headers, "Origin": "http://127.0.0.1:1"}
    async with http.get(f"{cors_service}/v1/jobs", headers=stranger) as response:
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_a_wildcard_origin_never_allows_credentials(service_settings: Settings, caller: Caller) -> None:
    settings = service_settings.model_copy(update={"cors_origins": ["*"], "worker_enabled": False})
    async with running_app(settings) as (_app, url), aiohttp.ClientSession() as http:
        headers = {**caller.headers, "Origin": "http://127.0.0.1:9"}
        async with http.get(f"{url}/v1/jobs", headers=headers) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:9"
            assert "Access-Control-Allow-Credentials" not in response.headers


async def test_a_reconnect_at_the_terminal_event_answers_204(
    service_settings: Settings, cors_service: str, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    job_id = await _noop(http, cors_service, caller, steps=2)
    await wait_for_terminal(service_settings.database_url, [uuid.UUID(job_id)])
    async with engine.connect() as conn:
        last = await conn.scalar(text("SELECT max(id) FROM job_events WHERE job_id = :j"), {"j": job_id})
    url = f"{cors_service}/v1/jobs/{job_id}/events"
    for resume in (str(last), str(last + 1000)):
        async with http.get(url, headers={**caller.headers, "Last-Event-ID": resume}) as response:
            assert response.status == 204
    async with http.get(url, headers={**caller.headers, "Last-Event-ID": str(last - 1)}) as response:
        assert response.status == 200
        body = await response.text()
    assert body.startswith("retry: 200\n\n")
    assert f"id: {last}\nevent: job.succeeded" in body


async def test_all_events_streams_start_with_a_retry_hint(cors_service: str, caller: Caller) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{cors_service}/v1/events", headers=caller.headers) as r:
        assert r.status == 200
        assert await r.content.readuntil(b"\n\n") == b"retry: 200\n\n"


async def test_event_source_in_chromium_gets_every_event_once_and_stops(
    service_settings: Settings, cors_service: str, page_origin: str, engine: AsyncEngine
) -> None:
    caller = await new_caller(engine, f"browser-{uuid.uuid4().hex[:6]}")
    key = caller.headers["Authorization"].removeprefix("Bearer ")
    async with aiohttp.ClientSession() as http:
        job_id = await _noop(http, cors_service, caller, steps=6, step_ms=50)
    async with chromium_page() as (page, refused):
        await page.goto(page_origin)
        await page.evaluate("url => window.follow(url)", f"{cors_service}/v1/jobs/{job_id}/events?access_token={key}")
        # EventSource.CLOSED (2): it reconnected once after the end, got 204, and gave up for good
        await page.wait_for_function("() => window.source.readyState === 2", timeout=30_000)
        seen = await page.evaluate("() => window.seen")
        opens, errors = await page.evaluate("() => [window.opens, window.errors]")
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT id, type FROM job_events WHERE job_id = :j ORDER BY id"), {"j": job_id})
        ).all()
    assert refused == []
    assert [(e["id"], e["type"]) for e in seen] == [(row.id, row.type) for row in rows]
    assert seen[-1]["type"] == "job.succeeded"
    assert [e["type"] for e in seen].count("job.progress") == 6
    assert opens == 1  # the 204 reconnect never opens
    assert errors == 2  # the end of the stream, then the 204
