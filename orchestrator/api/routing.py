"""A small route table that keeps what OpenAPI needs beside each handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class Operation:
    """One HTTP operation and its contract."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: bool = True
    produces: str = "application/json"
    errors: tuple[int, ...] = ()
    extra_responses: dict[int, str] = field(default_factory=dict)
    multipart: dict[str, Any] | None = None  # JSON schema of a multipart/form-data body
    event_stream: bool = False  # text/event-stream, resumable with Last-Event-ID / ?after=
    content_policy: bool = False  # its texts go past the content policy: a 422 may be a content-policy refusal
    idempotent: bool = False  # creates a job; takes an Idempotency-Key header
    patterns: dict[str, str] = field(default_factory=dict)
    """Regular expressions some path parameters must match for the route to match at all (so that
    ``/photos/presign`` is not taken for ``/photos/{photo_id}``, and a 405's ``Allow`` lists only the
    methods of the resource the path names)."""

    @property
    def route_path(self) -> str:
        """The path as aiohttp's router takes it: ``{name:regex}`` where a pattern is set."""
        path = self.path
        for name, pattern in self.patterns.items():
            path = path.replace("{" + name + "}", "{" + name + ":" + pattern + "}")
        return path


@dataclass(frozen=True)
class Webhook:
    """A request the service sends to its users (OpenAPI's ``webhooks`` section)."""

    name: str
    summary: str
    description: str
    payload: type[BaseModel]
    headers: dict[str, str] = field(default_factory=dict)


class Router:
    """Collects operations declared with :meth:`route` and installs them on an application."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self.webhooks: list[Webhook] = []

    def route(
        self, method: str, path: str, *, summary: str, tag: str, **contract: object
    ) -> Callable[[Handler], Handler]:
        """Declare ``handler`` as ``method path`` with its contract (see :class:`Operation`)."""

        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(method, path, handler, summary, tag, **contract))  # type: ignore[arg-type]
            return handler

        return register

    def install(self, app: web.Application) -> None:
        """Add every operation to ``app``'s router."""
        for op in self.operations:
            app.router.add_route(op.method, op.route_path, op.handler)

    def find(self, method: str, path_template: str) -> Operation | None:
        """The operation registered for a method and path template."""
        for op in self.operations:
            if op.method == method and op.path == path_template:
                return op
        return None


# Every router of the app: the core ones, then each feature's (installed and documented in OpenAPI together).
ROUTERS = web.AppKey("routers", list[Router])
