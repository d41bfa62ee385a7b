"""CORS for browser pages on other origins (``ATELIER_CORS_ORIGINS``), with aio-libs' ``aiohttp-cors``.

Listed origins are echoed back and may send credentials; ``*`` lets any origin read the API but never with
credentials (a page on any site must not ride on a visitor's cookies). Preflight requests carry no API key,
so the auth middleware lets ``OPTIONS`` through to aiohttp-cors' handler.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

ALLOWED_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID", "Idempotency-Key", "X-Request-ID")
EXPOSED_HEADERS = ("Location", "Retry-After", "X-Request-ID", "Content-Disposition")


def install_cors(app: web.Application, origins: list[str]) -> None:
    """Make every route of ``app`` answer CORS requests from ``origins`` (nothing when empty)."""
    if not origins:
        return
    defaults = {
        origin: aiohttp_cors.ResourceOptions(
            allow_credentials=origin != "*",
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
        for origin in origins
    }
    cors = aiohttp_cors.setup(app, defaults=defaults)
    for route in list(app.router.routes()):
        cors.add(route)
