"""Every error leaves the service as application/problem+json (RFC 9457)."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from orchestrator.db.errors import RETRY_AFTER_S, is_database_error, is_unavailable
from orchestrator.errors import PROBLEM_BASE, AtelierError, ServiceUnavailable

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    """A response carrying a problem document."""
    return web.Response(
        status=int(body["status"]),
        text=json.dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException, instance: str) -> web.Response:
    slug = _HTTP_SLUGS.get(exc.status, "http-error")
    body = {
        "type": PROBLEM_BASE + slug,
        "title": exc.reason,
        "status": exc.status,
        "detail": exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason,
        "instance": instance,
    }
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate", "retry-after")}
    return problem_response(body, headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Render AtelierError, aiohttp's HTTP errors and anything unexpected as problem+json.

    The database being unreachable or restarting (:func:`orchestrator.db.errors.is_unavailable`) is a
    503 with ``Retry-After``, not a 500.
    """
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except AtelierError as exc:
        headers = {"WWW-Authenticate": 'Bearer realm="atelier"'} if exc.status == 401 else None
        if exc.status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_S)}
        return problem_response(exc.problem(request.path), headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc, request.path)
    except ConnectionResetError:
        if request.transport is None or request.transport.is_closing():
            raise  # the client went away: nobody to answer
        log.warning("unavailable on %s %s: connection reset", request.method, request.path)
        return _unavailable(request, ConnectionResetError())
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("unavailable on %s %s: %r", request.method, request.path, exc)
            return _unavailable(request, exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(_internal(request))


def _unavailable(request: web.Request, exc: BaseException) -> web.Response:
    what = "the database is" if is_database_error(exc) else "a service this request needs is"
    body = ServiceUnavailable(f"{what} unavailable; retry shortly").problem(request.path)
    return problem_response(body, {"Retry-After": str(RETRY_AFTER_S)})


def _internal(request: web.Request) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + "internal",
        "title": "Internal error",
        "status": 500,
        "detail": "the service failed unexpectedly; the error is logged",
        "instance": request.path,
    }
