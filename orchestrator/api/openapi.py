"""The OpenAPI 3.1 document, generated from the route table and the pydantic models."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from orchestrator import __version__
from orchestrator.api.routing import Operation, Router
from orchestrator.api.schemas import Problem

REF = "#/components/schemas/{model}"
OPENAPI_DOC = web.AppKey("openapi_doc", dict)
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing or unknown API key",
    404: "Not found (or not yours)",
    409: "Conflicts with the resource's state",
    413: "Body too large",
    415: "Wrong content type",
    422: "Validation failed; errors name each field",
    503: "Not available right now",
}


def _models(operations: list[Operation]) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {"Problem": Problem}
    for op in operations:
        for model in (op.body, op.response):
            if model is not None:
                seen[model.__name__] = model
    return list(seen.values())


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
            "description": prop.get("description", ""),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(op: Operation) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ] + _query_parameters(op.query)
    ok: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        ok["content"] = {op.produces: {"schema": {"$ref": REF.format(model=op.response.__name__)}}}
    elif op.produces != "application/json":
        ok["content"] = {op.produces: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): ok}
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    for status in op.errors:
        responses[str(status)] = {"description": _ERROR_TEXT.get(status, "Error"), "content": problem}
    for status, text in op.extra_responses.items():
        responses[str(status)] = {"description": text}
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": op.handler.__name__,
        "parameters": params,
        "responses": responses,
    }
    if op.handler.__doc__:
        doc["description"] = op.handler.__doc__.strip()
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}},
        }
    if not op.auth:
        doc["security"] = []
    return doc


def build_openapi(routers: list[Router]) -> dict[str, Any]:
    """The whole document."""
    operations = [op for router in routers for op in router.operations]
    _, schemas = models_json_schema([(m, "validation") for m in _models(operations)], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LoRA Atelier",
            "version": __version__,
            "description": "Train LoRA adapters and generate images with them. Errors are application/problem+json.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


router = Router()


@router.route("GET", "/openapi.json", summary="This API's OpenAPI document", tag="service", auth=False)
async def openapi_json(request: web.Request) -> web.Response:
    """OpenAPI 3.1."""
    return web.json_response(request.app[OPENAPI_DOC])


@router.route("GET", "/docs", summary="Human-readable API reference", tag="service", auth=False, produces="text/html")
async def docs(request: web.Request) -> web.Response:
    """A self-contained page listing every operation (no external scripts)."""
    doc = request.app[OPENAPI_DOC]
    rows = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}</td><td>{html.escape(op.get('description', ''))}</td></tr>"
            )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>LoRA Atelier API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:4px 10px;vertical-align:top}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>LoRA Atelier API {html.escape(doc['info']['version'])}</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. "
        "Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p>"
        f"<table>{''.join(rows)}</table><h2>Schemas</h2><pre>"
        f"{html.escape(json.dumps(doc['components']['schemas'], indent=1))}</pre></body></html>"
    )
    return web.Response(text=page, content_type="text/html")
