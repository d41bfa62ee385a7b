"""Input hygiene at the edge: the one place that refuses characters no field of ours may hold.

Every string the API takes passes through here before a handler sees it: path segments and the
query string (the middleware below), JSON bodies (:func:`check_json_document`, called by the body
reader) and multipart part names and file names (:func:`check_name`). A refusal is a 422 naming
the field. What is refused:

- C0 control characters (NUL included) and DEL, C1 controls (U+0080 to U+009F) and lone surrogates:
  Postgres cannot store NUL in ``text`` or ``jsonb``, a surrogate cannot be encoded as UTF-8, and a
  control character in a name or a file path is never meant. JSON string *values* may keep tab,
  newline and carriage return (prompts have line breaks); names (keys, path and query parts,
  multipart names) may not.
- Non-finite numbers (``1e999`` parses as infinity, ``NaN`` is not JSON): ``jsonb`` refuses them.

Integer ranges are the models' business (each integer field is bounded; a test checks the OpenAPI
document for that).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from aiohttp import web

from orchestrator.errors import ValidationFailed

CONTROL_CHARACTER = "control_character"
_IN_NAMES = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _reason(value: str, pattern: re.Pattern[str]) -> str | None:
    found = pattern.search(value)
    if found is None:
        return None
    char = found.group()
    return f"contains the control character U+{ord(char):04X} at position {found.start()}; remove it"


def check_name(value: str, field: str) -> None:
    """Refuse a name (path segment, query parameter, multipart name) holding a control character."""
    reason = _reason(value, _IN_NAMES)
    if reason is not None:
        raise ValidationFailed([{"field": field, "reason": reason, "type": CONTROL_CHARACTER}])


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _problems(value: Any, path: str) -> Iterator[dict[str, str]]:
    """Every refused string or number in a parsed JSON document, with its field path."""
    if isinstance(value, str):
        reason = _reason(value, _IN_TEXT)
        if reason is not None:
            yield {"field": path or "body", "reason": reason, "type": CONTROL_CHARACTER}
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield {"field": path or "body", "reason": "must be a finite number", "type": "finite_number"}
    elif isinstance(value, Mapping):
        for key, item in value.items():
            reason = _reason(key, _IN_NAMES)
            if reason is not None:
                yield {"field": _join(path, key), "reason": f"the field name {reason}", "type": CONTROL_CHARACTER}
            else:
                yield from _problems(item, _join(path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _problems(item, _join(path, index))


def check_json_document(document: Any, *, limit: int = 20) -> None:
    """Refuse a parsed JSON document with control characters in a key or string, or a non-finite number."""
    problems = []
    for problem in _problems(document, ""):
        problems.append(problem)
        if len(problems) >= limit:
            break
    if problems:
        raise ValidationFailed(problems)


def _request_problems(request: web.Request) -> Iterator[dict[str, str]]:
    for name, value in request.match_info.items():
        reason = _reason(value, _IN_NAMES)
        if reason is not None:
            yield {"field": name, "reason": reason, "type": CONTROL_CHARACTER}
    for name, value in request.query.items():
        reason = _reason(name, _IN_NAMES)
        if reason is not None:
            yield {"field": ascii(name), "reason": f"the parameter name {reason}", "type": CONTROL_CHARACTER}
            continue
        reason = _reason(value, _IN_NAMES)
        if reason is not None:
            yield {"field": name, "reason": reason, "type": CONTROL_CHARACTER}


@web.middleware
async def hygiene_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """422 for a path segment or query parameter holding a control character, before any handler runs."""
    problems = list(_request_problems(request))
    if problems:
        raise ValidationFailed(problems)
    response: web.StreamResponse = await handler(request)
    return response
