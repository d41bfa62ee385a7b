# SPDX-License-Identifier: Apache-2.0
"""The generation feature plugged into the app: routers, the backend pool (cleanup context), the
``generation`` job kind, the sweep that makes finished images durable (cleanup context) and the ``comfyui``
readiness check.

Readiness: with ComfyUI configured, /readyz needs at least one ready backend; without any, the check reports
"not configured" and passes, so that a process that serves training or the API alone is ready.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.api.health import READINESS_CHECKS
from orchestrator.api.routing import ROUTERS
from orchestrator.app_keys import ENGINE, KIND_FACTORIES, SETTINGS, STORAGE
from orchestrator.generation import api, catalog_api, registered_api
from orchestrator.generation.generation_services import GENERATION, generation_services, readiness
from orchestrator.generation.kind import GenerationKind
from orchestrator.generation.pending_images import PendingImages
from orchestrator.jobs.kinds import JobKind
from orchestrator.policy.feature import CONTENT_POLICY


def generation_kind(app: web.Application) -> JobKind | None:
    """The generation kind, or None where no ComfyUI is configured."""
    services = app[GENERATION]
    if services.comfy is None:
        return None
    return GenerationKind(services, app[STORAGE], services.comfy.pool, app[CONTENT_POLICY])


async def pending_images_sweep(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the sweep over images still pending (from this process or one that died), for the life
    of the app."""
    sweep = PendingImages(app[ENGINE], app[STORAGE], interval_s=app[SETTINGS].pending_images_sweep_s)
    sweep.start()
    try:
        yield
    finally:
        await sweep.stop()


def install(app: web.Application) -> None:
    """Add the endpoints, the pool, the job kind, the sweep and the readiness check."""
    app[ROUTERS].extend([api.router, catalog_api.router, registered_api.router])
    app[KIND_FACTORIES].append(generation_kind)
    app.cleanup_ctx.extend([generation_services, pending_images_sweep])
    app[READINESS_CHECKS].append(("comfyui", readiness))
