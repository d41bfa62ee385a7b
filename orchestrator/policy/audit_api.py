# SPDX-License-Identifier: Apache-2.0
"""GET /v1/audit: the content policy's decisions, for operators (API keys with the admin flag)."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.auth import IDENTITY
from orchestrator.api.bodies import json_response, parse_query
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE
from orchestrator.errors import Forbidden
from orchestrator.policy.audit_queries import AuditFilter, list_audit
from orchestrator.policy.audit_schemas import AuditEventOut, AuditList, AuditQuery

router = Router()


@router.route(
    "GET",
    "/v1/audit",
    summary="The content policy's audit log (operators)",
    tag="audit",
    query=AuditQuery,
    response=AuditList,
    errors=(401, 403, 422),
)
async def list_audit_events(request: web.Request) -> web.Response:
    """Every refused request and every blocked or blurred image, newest first, across all owners. Needs an API
    key created with ``atelier keys create --admin`` (403 otherwise)."""
    if not request[IDENTITY].admin:
        raise Forbidden("the audit log is for operators: use an API key created with `atelier keys create --admin`")
    query = parse_query(request, AuditQuery)
    where = AuditFilter(query.rule, query.context, query.owner_id, query.job_id, query.since)
    rows, next_cursor = await list_audit(request.app[ENGINE], where, limit=query.limit, cursor=query.cursor)
    return json_response(AuditList(items=[AuditEventOut.of(r) for r in rows], next_cursor=next_cursor))
