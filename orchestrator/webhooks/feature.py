"""The webhook administration endpoints plugged into the app (the dispatcher itself runs with the worker)."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.routing import ROUTERS
from orchestrator.webhooks import api


def install(app: web.Application) -> None:
    """Add the /v1/webhooks endpoints."""
    app[ROUTERS].append(api.router)
