"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Docstrings in the code use reST's double backticks; the document's descriptions are Markdown, so every
description is converted on the way out (```x``` -> `x`).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from orchestrator import __version__
from orchestrator.api.event_schemas import JobEvent
from orchestrator.api.idempotency import HEADER_SCHEMA as IDEMPOTENCY_HEADER
from orchestrator.api.routing import Operation, Router, Webhook
from orchestrator.api.schemas import ContentPolicyProblem, Problem

REF = "#/components/schemas/{model}"
OPENAPI_DOC = web.AppKey("openapi_doc", dict)
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, unknown or revoked API key",
    403: "The key may not do this",
    404: "Not found (or not yours)",
    409: "Conflicts with the resource's state",
    413: "Body too large",
    415: "Wrong content type",
    422: "Validation failed; `errors` names each field",
    429: "Too many requests; `Retry-After` says when to try again",
    503: "Not available right now; `Retry-After` may say when to try again",
}
# Path parameters by name: ids are UUIDs, ``n`` is an index or version number, the rest are names.
_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "string", "format": "uuid"},
    "photo_id": {"type": "string", "format": "uuid"},
    "n": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
}
_SSE_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]*$"},
        "description": "Resume after this event id (browsers' `EventSource` sends it on reconnect).",
    },
    {
        "name": "after",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "description": "Resume after this event id, for clients that cannot set headers; the header wins.",
    },
    {
        "name": "access_token",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The API key, for a browser's `EventSource` (it cannot send `Authorization`).",
    },
]
_CONTENT_POLICY_TEXT = (
    "Validation failed (`errors` names each field), or the content policy refused a text: `type` "
    "`https://lora-atelier.dev/problems/content-policy`, `rule` (`minors_sexual` always, `nsfw_text` per "
    "the operator's policy), `request_id`, `errors: [{field, reason, rule}]`; nothing was queued"
)
_SSE_DESCRIPTION = (
    "A stream of Server-Sent Events. Each message has `id:` (the event's sequence number), `event:` "
    "(its type) and `data:` (one JSON object, schema below). Comments (`: ping`) keep the connection alive."
)
INFO_DESCRIPTION = """
Train LoRA adapters from a handful of photos and generate images with them on headless ComfyUI servers.

**Authentication.** Send `Authorization: Bearer <key>` (`atelier keys create --owner <name>` issues one).
Each key belongs to one owner; another owner's resource answers 404.

**Errors** are `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`, and for a request
that broke the contract `errors: [{field, reason, type}]` naming each field. Control characters in any
string (path, query, JSON, multipart names) are a 422; while the database is unreachable or restarting,
requests answer 503 with `Retry-After`.

**Content policy.** Every text a job carries is checked before it is queued: texts that sexualise minors are
refused always, sexual content per the operator's `ATELIER_CONTENT_POLICY`; a refusal is a 422 of type
`/content-policy` naming the field and the rule, and is recorded in the audit log (`GET /v1/audit`, admin keys).

**Jobs and events.** Creating a generation, a training or an erasure answers `202` with the job's `id` and
`events_url`. The events are Server-Sent Events; a client that lost its connection resumes with
`Last-Event-ID` (or `?after=`) and gets exactly the events it missed. A reconnect after the job's last
event answers `204 No Content`, which tells a browser's `EventSource` to stop.

**Webhooks.** A job created with `webhook_url` is POSTed there when it ends, signed as
[Standard Webhooks](https://www.standardwebhooks.com/) (`webhook-id`, `webhook-timestamp`,
`webhook-signature`) with your owner's `whsec_` secret (`POST /v1/webhooks/secret`).
""".strip()


def markdown(text: str) -> str:
    """A docstring as Markdown: reST's ````literal```` becomes `` `literal` ``; indentation is dropped."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return re.sub(r"``(.+?)``", r"`\1`", "\n".join(lines))


def _markdown_descriptions(node: Any) -> Any:
    """Convert every ``description`` in a JSON schema tree to Markdown."""
    if isinstance(node, dict):
        return {
            key: markdown(value) if key == "description" and isinstance(value, str) else _markdown_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_markdown_descriptions(item) for item in node]
    return node


def _models(operations: list[Operation], webhooks: list[Webhook]) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {"Problem": Problem, "JobEvent": JobEvent}
    if any(op.content_policy for op in operations):
        seen["ContentPolicyProblem"] = ContentPolicyProblem
    for op in operations:
        for model in (op.body, op.response):
            if model is not None:
                seen[model.__name__] = model
    for hook in webhooks:
        seen[hook.payload.__name__] = hook.payload
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


def documented_errors(op: Operation) -> list[int]:
    """The error statuses of an operation: its own, plus what every operation of its shape can answer.

    Authenticated operations can answer 401 (no or a bad key) and 503 (the database is unavailable);
    any operation with path or query parameters can answer 422 (a control character in one of them); any
    with a JSON body 400 (malformed), 413 (too large), 415 (not JSON) and 422.
    """
    errors = set(op.errors)
    if op.auth:
        errors |= {401, 503}
    if op.body is not None:
        errors |= {400, 413, 415, 422}
    if op.query is not None or op.event_stream or op.idempotent or "{" in op.path:
        errors.add(422)
    return sorted(errors)


def _parameters(op: Operation) -> list[dict[str, Any]]:
    path = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS.get(name, {"type": "string"})}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    headers = [IDEMPOTENCY_HEADER] if op.idempotent else []
    return path + _query_parameters(op.query) + (_SSE_PARAMETERS if op.event_stream else []) + headers


def _success(op: Operation) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": op.summary}
    if op.event_stream:
        ok["description"] = _SSE_DESCRIPTION
        ok["content"] = {"text/event-stream": {"schema": {"$ref": REF.format(model="JobEvent")}}}
    elif op.response is not None:
        ok["content"] = {op.produces: {"schema": {"$ref": REF.format(model=op.response.__name__)}}}
    elif op.produces not in ("application/json", "text/plain", "text/html"):
        ok["content"] = {op.produces: {"schema": {"type": "string", "contentMediaType": op.produces}}}
    elif op.produces != "application/json":
        ok["content"] = {op.produces: {"schema": {"type": "string"}}}
    return ok


def _responses(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {str(op.status): _success(op)}
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    for status in documented_errors(op):
        responses[str(status)] = {"description": _ERROR_TEXT.get(status, "Error"), "content": problem}
    if op.content_policy and "422" in responses:
        either = {"oneOf": [{"$ref": REF.format(model="Problem")}, {"$ref": REF.format(model="ContentPolicyProblem")}]}
        responses["422"] = {
            "description": _CONTENT_POLICY_TEXT,
            "content": {"application/problem+json": {"schema": either}},
        }
    for status, text in op.extra_responses.items():
        responses[str(status)] = {"description": text}
    return dict(sorted(responses.items()))


def _request_body(op: Operation) -> dict[str, Any] | None:
    if op.multipart is not None:
        return {"required": True, "content": {"multipart/form-data": {"schema": op.multipart}}}
    if op.body is not None:
        return {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}},
        }
    return None


def _operation(op: Operation) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": op.handler.__name__,
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.handler.__doc__:
        doc["description"] = markdown(op.handler.__doc__)
    body = _request_body(op)
    if body is not None:
        doc["requestBody"] = body
    if not op.auth:
        doc["security"] = []
    return doc


def _webhook(hook: Webhook) -> dict[str, Any]:
    headers = {
        name: {"required": True, "schema": {"type": "string"}, "description": text}
        for name, text in hook.headers.items()
    }
    return {
        "post": {
            "summary": hook.summary,
            "description": markdown(hook.description),
            "operationId": f"webhook_{hook.name.replace('.', '_')}",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=hook.payload.__name__)}}},
            },
            "parameters": [{"name": name, "in": "header", **spec} for name, spec in headers.items()],
            "responses": {"2XX": {"description": "Delivered. Any other answer (or none in 10 s) is retried."}},
            "security": [],
        }
    }


def build_openapi(routers: list[Router]) -> dict[str, Any]:
    """The whole document."""
    operations = [op for router in routers for op in router.operations]
    webhooks = [hook for router in routers for hook in router.webhooks]
    _, schemas = models_json_schema([(m, "validation") for m in _models(operations, webhooks)], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LoRA Atelier",
            "version": __version__,
            "description": INFO_DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "webhooks": {hook.name: _webhook(hook) for hook in webhooks},
        "components": {
            "schemas": _markdown_descriptions(schemas.get("$defs", {})),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: `atl_<prefix>_<secret>`."}
            },
        },
        "security": [{"bearer": []}],
    }


router = Router()


@router.route("GET", "/openapi.json", summary="This API's OpenAPI document", tag="service", auth=False)
async def openapi_json(request: web.Request) -> web.Response:
    """OpenAPI 3.1, generated from the route table and the request and response models."""
    return web.json_response(request.app[OPENAPI_DOC])
