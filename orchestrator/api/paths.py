"""Reading the ids in a request's path."""

from __future__ import annotations

import uuid

from aiohttp import web

from orchestrator.errors import NotFound


def path_uuid(request: web.Request, what: str, name: str = "id") -> uuid.UUID:
    """The UUID in the path parameter ``name``; a malformed one cannot name any ``what``, so it is a 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound(f"no {what} with id {request.match_info[name]!r}") from exc
