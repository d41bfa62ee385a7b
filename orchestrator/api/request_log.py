"""Request ids and the access log: ``X-Request-ID`` in (when sane) and out, bound to the request's log context."""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from orchestrator.logs import bound

REQUEST_ID = web.RequestKey("request_id", str)
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def request_id_of(request: web.BaseRequest) -> str:
    """The request's id: a sane ``X-Request-ID`` it came with, else a new one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _SANE_ID.match(given) else uuid.uuid4().hex


@web.middleware
async def request_context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bind the request's id for its handler; every log line of the request carries it."""
    request[REQUEST_ID] = request_id_of(request)
    with bound(request_id=request[REQUEST_ID]):
        response: web.StreamResponse = await handler(request)
        return response


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer, streams and errors included, says its request id."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


class AccessLogger(AbstractAccessLogger):
    """One record per request on ``atelier.access``; the ``access_token`` query parameter never appears."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        query = "&".join(f"{k}=***" if k == "access_token" else f"{k}={v}" for k, v in request.query.items())
        path = f"{request.path}?{query}" if query else request.path
        fields = {
            "request_id": response.headers.get(REQUEST_ID_HEADER) or request.headers.get(REQUEST_ID_HEADER, ""),
            "method": request.method,
            "path": path,
            "status": response.status,
            "duration_ms": round(time * 1000, 2),
            "remote": request.remote,
        }
        self.logger.info("%s %s %d %.1fms", request.method, path, response.status, time * 1000, extra=fields)
