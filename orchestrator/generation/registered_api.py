# SPDX-License-Identifier: Apache-2.0
"""POST /v1/templates (register a graph edited in ComfyUI) and DELETE /v1/templates/{name}."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.auth import IDENTITY, OWNER
from orchestrator.api.bodies import json_response, read_json_body
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE
from orchestrator.errors import NotFound
from orchestrator.generation.generation_services import GENERATION
from orchestrator.generation.registered import delete_saved, register_graph
from orchestrator.generation.schemas import RegisterTemplate, TemplateSummary
from orchestrator.policy.feature import CONTENT_POLICY

router = Router()


def summary_of(name: str, description: str, input_schema: dict[str, object]) -> TemplateSummary:
    """A registered template as the template list shows it."""
    return TemplateSummary(
        name=name, description=description, url=f"/v1/templates/{name}", input_schema=input_schema, registered=True
    )


@router.route(
    "POST",
    "/v1/templates",
    summary="Register a graph edited in ComfyUI as a template",
    tag="templates",
    body=RegisterTemplate,
    response=TemplateSummary,
    status=201,
    errors=(401, 413, 415, 422, 503),
    content_policy=True,
)
async def register_template(request: web.Request) -> web.Response:
    """Mark the parameters with Atelier…Input nodes (our node pack), export the graph (API or editor
    format) and send it here; the markers become the request fields. Registering a name again replaces it
    (200); each problem found (duplicate or unused marker, no output, a node or value the backend would
    reject) is reported with the node and input it concerns."""
    body = await read_json_body(request, RegisterTemplate)
    gate = request.app[CONTENT_POLICY].gate(request[IDENTITY])
    services, engine = request.app[GENERATION], request.app[ENGINE]
    template, created = await register_graph(services, engine, request[OWNER], body, gate)
    summary = summary_of(template.name, template.description, template.input_schema())
    return json_response(summary, 201 if created else 200, headers={"Location": summary.url})


@router.route(
    "DELETE",
    "/v1/templates/{name}",
    summary="Forget a registered template",
    tag="templates",
    status=204,
    errors=(401, 404),
)
async def delete_template(request: web.Request) -> web.Response:
    """Built-in templates cannot be deleted (404); past generations keep their graphs."""
    if not await delete_saved(request.app[ENGINE], request[OWNER], request.match_info["name"]):
        raise NotFound(f"you have no registered template called {request.match_info['name']!r}")
    return web.Response(status=204)
