"""The fuzz harness tells a request the HTTP parser refused (over-long request line) from an answer of the API."""

from __future__ import annotations

import asyncio

import requests
from aiohttp import web

from tests.fuzz.openapi_fuzz import REQUEST_LINE_LIMIT, _refused_by_http_parser


async def _things(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def test_an_over_long_request_line_is_refused_by_aiohttp_before_any_handler() -> None:
    app = web.Application()
    app.router.add_get("/v1/things", _things)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        short, long = await asyncio.gather(
            asyncio.to_thread(requests.get, f"http://127.0.0.1:{port}/v1/things?status=a", timeout=10),
            asyncio.to_thread(
                requests.get, f"http://127.0.0.1:{port}/v1/things?status={'a' * REQUEST_LINE_LIMIT}", timeout=10
            ),
        )
    finally:
        await runner.cleanup()
    assert short.status_code == 200
    assert not _refused_by_http_parser(short)
    assert long.status_code == 400
    assert _refused_by_http_parser(long)
