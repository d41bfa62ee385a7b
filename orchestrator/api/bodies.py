"""Parsing request bodies and query strings into pydantic models, with field-naming errors."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from orchestrator.api.hygiene import check_json_document
from orchestrator.app_keys import SETTINGS
from orchestrator.errors import (
    MalformedJson,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    validation_errors,
)

ModelT = TypeVar("ModelT", bound=BaseModel)
RAW_BODY = web.RequestKey("raw_body", bytes)
"""The body bytes as read (the Idempotency-Key fingerprint covers them)."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, read to its end; 413 as soon as it is known to be larger than ``limit``.

    ``StreamReader.read(n)`` answers with what has arrived so far, so a body that comes in several
    TCP segments must be read in a loop until EOF (or past the limit).
    """
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body has {request.content_length} bytes; this endpoint accepts {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than the {limit} bytes this endpoint accepts")
        chunks.append(chunk)
    raw = request[RAW_BODY] = b"".join(chunks)
    return raw


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json_document(raw: bytes) -> Any:
    """The parsed body; 400 when it is not JSON (NaN and Infinity are not), 422 when hygiene refuses it."""
    if not raw.strip():
        raise MalformedJson("the body is empty; send a JSON object")
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError as exc:
        raise MalformedJson("the body is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a refused constant, a huge integer
        raise MalformedJson(f"the body is not valid JSON: {exc}") from exc
    check_json_document(document)
    return document


async def read_json_body(request: web.Request, model: type[ModelT], *, limit: int | None = None) -> ModelT:
    """Read and validate a JSON body. 415 when not JSON, 400 when malformed, 413 too big, 422 invalid.

    ``limit`` defaults to ``ATELIER_MAX_JSON_BODY_BYTES``. Validation is strict: a JSON ``false`` is not
    an integer, ``"1"`` is not a boolean, ``2.0`` is not an integer.
    """
    if request.content_type != "application/json":
        raise UnsupportedMediaType(f"send the body as application/json, not {request.content_type or 'nothing'}")
    raw = await read_body(request, limit or request.app[SETTINGS].max_json_body_bytes)
    parse_json_document(raw)
    try:
        return model.model_validate_json(raw, strict=True)
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
