"""The ``Idempotency-Key`` header of job-creating requests (the IETF httpapi draft's semantics).

A client that cannot tell whether its request got through (a timeout, a dropped connection) sends it
again with the same key; the service answers with the first answer and creates nothing:

- same owner, same key, same request within 24 hours: the first answer (its status, body and
  ``Location``), with ``Idempotent-Replayed: true``;
- same key, different request (method, path or body): 422 naming ``Idempotency-Key`` (the key is being
  reused for something else; nothing is created);
- concurrent requests with one key: one creates the job (the key and the job are written by one
  statement), the others answer as above.

Only answers that created a job are remembered: a refused request (4xx) can be corrected and sent again
with the same key. The fingerprint is SHA-256 over the method, the path and the body bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import RAW_BODY
from orchestrator.app_keys import ENGINE
from orchestrator.errors import ValidationFailed
from orchestrator.jobs.idempotency import KEEP_HOURS, IdempotencyClaim, StoredAnswer, stored_answer

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
HEADER_SCHEMA: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[\\x21-\\x7e]+$"},
    "description": f"Send the request again with the same key and get the first answer, without a second "
    f"job (kept {KEEP_HOURS} h per owner); the same key with a different request is a 422.",
}


def _problem(reason: str, kind: str) -> ValidationFailed:
    return ValidationFailed([{"field": HEADER, "reason": reason, "type": kind}])


def idempotency_key(request: web.Request) -> str | None:
    """The request's key (printable ASCII, 1 to 255 characters); None without one; 422 when malformed."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all("\x21" <= c <= "\x7e" for c in key):
        raise _problem(f"must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces", "invalid")
    return key


def fingerprint(request: web.Request) -> str:
    """SHA-256 of the method, the path and the body bytes as they were read."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get(RAW_BODY, b""))
    return digest.hexdigest()


def _replay(request: web.Request, stored: StoredAnswer) -> web.Response:
    if stored.request_sha256 != fingerprint(request):
        reason = f"was used for a different request in the last {KEEP_HOURS} hours; use a new key for a new request"
        raise _problem(reason, "idempotency_key_reused")
    headers = {REPLAYED: "true"} | ({"Location": stored.location} if stored.location else {})
    return web.Response(
        status=stored.status, body=json.dumps(stored.response), content_type="application/json", headers=headers
    )


async def earlier_answer(request: web.Request) -> web.Response | None:
    """The first answer to this request when it was sent before with its key (call after reading the body)."""
    key = idempotency_key(request)
    if key is None:
        return None
    stored = await stored_answer(request.app[ENGINE], request[OWNER], key)
    return _replay(request, stored) if stored is not None else None


async def answer_after_race(request: web.Request) -> web.Response:
    """The answer when another request with this key created its job first (``IdempotencyKeyTaken``)."""
    key = idempotency_key(request)
    stored = await stored_answer(request.app[ENGINE], request[OWNER], key) if key is not None else None
    if stored is None:  # the other request's row is gone again (it expired): nothing to give
        raise _problem("was taken by a concurrent request; send the request again", "idempotency_key_busy")
    return _replay(request, stored)


def claim(request: web.Request, answer: BaseModel, location: str, status: int = 202) -> IdempotencyClaim | None:
    """What to record with the job under the request's key (None when it sent none)."""
    key = idempotency_key(request)
    if key is None:
        return None
    body = answer.model_dump(mode="json", by_alias=True)
    return IdempotencyClaim(key, fingerprint(request), status, body, location)
