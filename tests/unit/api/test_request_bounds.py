"""Every integer a request carries is bounded: nothing a client sends can overflow a database column."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchestrator.app import create_app
from orchestrator.settings import Settings

INT32_MAX = 2**31 - 1
# Seeds never reach an integer column (they travel inside jsonb payloads to ComfyUI and sd-scripts), so
# they may be as wide as those engines take.
WIDE_FIELDS = (".seed", "?after")  # event ids are bigint


def _document() -> dict[str, Any]:
    from orchestrator.api.openapi import OPENAPI_DOC

    app = create_app(Settings(comfyui_urls=[]), serve_http=False)
    return app[OPENAPI_DOC]


def _integers(schema: Any, defs: dict[str, Any], path: str, seen: frozenset[str]) -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                yield from _integers(defs[name], defs, path, seen | {name})
            return
        if schema.get("type") == "integer":
            yield path, schema
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from _integers(sub, defs, f"{path}.{name}", seen)
            elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
                subs = value if isinstance(value, list) else [value]
                for sub in subs:
                    yield from _integers(sub, defs, path, seen)


def _upper(schema: dict[str, Any]) -> Any:
    return schema.get("maximum", schema.get("exclusiveMaximum"))


def _lower(schema: dict[str, Any]) -> Any:
    return schema.get("minimum", schema.get("exclusiveMinimum"))


def _request_integers() -> list[tuple[str, Any]]:
    doc = _document()
    defs = doc["components"]["schemas"]
    found: list[tuple[str, Any]] = []
    for route, methods in doc["paths"].items():
        for method, op in methods.items():
            where = f"{method.upper()} {route}"
            for param in op.get("parameters", []):
                found += _integers(param["schema"], defs, f"{where} ?{param['name']}", frozenset())
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                found += _integers(body, defs, f"{where} body", frozenset())
    return found


def test_every_request_integer_has_both_bounds_within_what_postgres_or_comfyui_hold() -> None:
    integers = _request_integers()
    assert len(integers) > 10  # the walk reaches the models
    unbounded = [path for path, schema in integers if _upper(schema) is None or _lower(schema) is None]
    assert not unbounded, f"integers without both bounds: {unbounded}"
    too_wide = [path for path, s in integers if _upper(s) > INT32_MAX and not path.endswith(WIDE_FIELDS)]
    assert not too_wide, f"integers wider than an int32 column: {too_wide}"
