"""The LoRA registry's endpoints plugged into the app (trainings publish to the registry, generations read it)."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.routing import ROUTERS
from orchestrator.loras import api


def install(app: web.Application) -> None:
    """Add the /v1/loras endpoints."""
    app[ROUTERS].append(api.router)
