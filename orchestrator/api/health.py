"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from orchestrator.api.bodies import json_response
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS, STORE
from orchestrator.db.engine import ping
from orchestrator.jobs.queries import job_counts

router = Router()

ReadinessCheck = Callable[[web.Application], Awaitable[tuple[bool, Any]]]
# (name, check) pairs that features add; /readyz runs them all.
READINESS_CHECKS = web.AppKey("readiness_checks", list[tuple[str, ReadinessCheck]])


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness and the check behind it."""

    status: str
    checks: dict[str, Any]


@router.route("GET", "/healthz", summary="Liveness", tag="service", response=Health, auth=False)
async def healthz(_request: web.Request) -> web.Response:
    """The process answers."""
    return json_response(Health(status="ok"))


async def _database_check(app: web.Application) -> tuple[bool, Any]:
    try:
        async with asyncio.timeout(2.0):
            await ping(app[ENGINE])
    except Exception as exc:
        return False, f"unreachable: {type(exc).__name__}"
    queued = await app[STORE].count_queued()
    limit = app[SETTINGS].queue_limit
    return queued <= limit, {"queued": queued, "limit": limit}


@router.route(
    "GET",
    "/readyz",
    summary="Readiness",
    tag="service",
    response=Readiness,
    auth=False,
    extra_responses={503: "Not ready; the body says which check failed."},
)
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers, the queue is under its limit, and each engine check passes."""
    checks: dict[str, Any] = {}
    ok, checks["database"] = await _database_check(request.app)
    for name, check in request.app.get(READINESS_CHECKS, []):
        passed, checks[name] = await check(request.app)
        ok = ok and passed
    return json_response(Readiness(status="ready" if ok else "not ready", checks=checks), 200 if ok else 503)


@router.route("GET", "/metrics", summary="Prometheus metrics", tag="service", auth=False, produces="text/plain")
async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition format; job counts and backend states are read now."""
    metrics = request.app[METRICS]
    metrics.set_job_counts(await job_counts(request.app[ENGINE]))
    metrics.refresh()
    body = metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
