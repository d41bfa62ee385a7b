"""Parsing request bodies and query strings into pydantic models, with field-naming errors."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from orchestrator.app_keys import SETTINGS
from orchestrator.errors import (
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    validation_errors,
)

ModelT = TypeVar("ModelT", bound=BaseModel)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body has {request.content_length} bytes; this endpoint accepts {limit}")
    raw = await request.content.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than the {limit} bytes this endpoint accepts")
    return raw


async def read_json_body(request: web.Request, model: type[ModelT], *, limit: int | None = None) -> ModelT:
    """Read and validate a JSON body. 415 when not JSON, 400 when malformed, 413 too big, 422 invalid.

    ``limit`` defaults to ``ATELIER_MAX_JSON_BODY_BYTES``.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"send the body as application/json, not {request.content_type or 'nothing'}")
    raw = await _read_limited(request, limit or request.app[SETTINGS].max_json_body_bytes)
    if not raw.strip():
        raise MalformedJson("the body is empty; send a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            first = exc.errors()[0]
            raise MalformedJson(f"the body is not valid JSON: {first['msg']}") from exc
        raise ValidationFailed(validation_errors(exc)) from exc


def parse_query(request: web.Request, model: type[ModelT]) -> ModelT:
    """Validate the query string against ``model``; 422 naming the parameter when invalid."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from exc


def json_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """Serialise a response model."""
    return web.Response(
        status=status,
        body=model.model_dump_json(by_alias=True),
        content_type="application/json",
        headers=headers,
    )
