# SPDX-License-Identifier: Apache-2.0
"""The generation feature plugged into the app: routers, the backend pool (cleanup context), the
``generation`` job kind and the ``comfyui`` readiness check.

Readiness: with ComfyUI configured, /readyz needs at least one ready backend; without any, the check reports
"not configured" and passes, so that a process that serves training or the API alone is ready.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.health import READINESS_CHECKS
from orchestrator.api.routing import ROUTERS
from orchestrator.app_keys import KIND_FACTORIES, STORAGE
from orchestrator.generation import api, catalog_api, registered_api
from orchestrator.generation.generation_services import GENERATION, generation_services, readiness
from orchestrator.generation.kind import GenerationKind
from orchestrator.jobs.kinds import JobKind
from orchestrator.policy.feature import CONTENT_POLICY


def generation_kind(app: web.Application) -> JobKind | None:
    """The generation kind, or None where no ComfyUI is configured."""
    services = app[GENERATION]
    if services.comfy is None:
        return None
    return GenerationKind(services, app[STORAGE], services.comfy.pool, app[CONTENT_POLICY])


def install(app: web.Application) -> None:
    """Add the endpoints, the pool, the job kind and the readiness check."""
    app[ROUTERS].extend([api.router, catalog_api.router, registered_api.router])
    app[KIND_FACTORIES].append(generation_kind)
    app.cleanup_ctx.append(generation_services)
    app[READINESS_CHECKS].append(("comfyui", readiness))
