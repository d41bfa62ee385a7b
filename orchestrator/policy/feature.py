# SPDX-License-Identifier: Apache-2.0
"""The content policy plugged into the app: the per-process :class:`ContentPolicy` and GET /v1/audit.

Installed before the features that use it (generation, training): their use cases find it under
:data:`CONTENT_POLICY`. The word lists are loaded at start-up (in a thread), not on the first request; the
image classifier loads on its first image.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.api.routing import ROUTERS
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS
from orchestrator.policy import audit_api
from orchestrator.policy.enforcement import ContentPolicy
from orchestrator.policy.lexicon import default_lexicon

CONTENT_POLICY = web.AppKey("content_policy", ContentPolicy)


async def content_policy(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the policy for the life of the app."""
    await asyncio.to_thread(default_lexicon)
    app[CONTENT_POLICY] = ContentPolicy(app[SETTINGS], app[ENGINE], app[METRICS])
    yield


def install(app: web.Application) -> None:
    """Add the audit endpoint and the policy service."""
    app[ROUTERS].append(audit_api.router)
    app.cleanup_ctx.append(content_policy)
