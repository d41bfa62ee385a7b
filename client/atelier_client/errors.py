"""Typed errors: every problem+json answer of the API becomes an :class:`ApiError` subclass by status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class AtelierError(Exception):
    """Base of every error this package raises."""


@dataclass(frozen=True)
class FieldError:
    """One field-level problem of a request: ``loras[0].lora`` and why."""

    field: str
    reason: str


class ApiError(AtelierError):
    """The API answered with an error (an RFC 9457 problem document, kept whole in ``problem``)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.retry_after: float | None = None  # seconds, from a 429's or 503's Retry-After
        self.errors = [
            FieldError(str(e.get("field", "")), str(e.get("reason", "")))
            for e in problem.get("errors", []) or []
            if isinstance(e, dict)
        ]
        super().__init__(f"{status} {self.title}: {self.detail}" if self.title else f"{status}: {self.detail}")


class BadRequest(ApiError):
    """400: the request could not be read."""


class Unauthorized(ApiError):
    """401: no API key, or an unknown or revoked one."""


class Forbidden(ApiError):
    """403: the key may not do this."""


class NotFound(ApiError):
    """404: no such resource (or not yours)."""


class Conflict(ApiError):
    """409: the resource's state forbids it (e.g. cancelling a finished job)."""


class PayloadTooLarge(ApiError):
    """413: the body is over the service's limit."""


class ValidationFailed(ApiError):
    """422: the request broke the contract; ``errors`` names each field."""


class RateLimited(ApiError):
    """429: too many requests; ``retry_after`` says how long to wait (seconds), when the service said."""


class ServiceUnavailable(ApiError):
    """503: not available right now (database restarting, no backend ready); retry later."""


class ServerError(ApiError):
    """Any other 5xx."""


class StreamLost(AtelierError):
    """An event stream could not be resumed after repeated attempts."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(response: httpx.Response) -> ApiError:
    """The typed error for an error response (its body must have been read)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: dict[str, Any] = (
        body if isinstance(body, dict) else {"title": response.reason_phrase, "detail": response.text[:500]}
    )
    cls = _BY_STATUS.get(response.status_code, ServerError if response.status_code >= 500 else ApiError)
    error = cls(response.status_code, problem)
    retry_after = response.headers.get("Retry-After", "")
    if retry_after.replace(".", "", 1).isdigit():
        error.retry_after = float(retry_after)
    return error


def raise_for_problem(response: httpx.Response) -> None:
    """Raise the typed error when ``response`` is an error (4xx or 5xx)."""
    if response.is_error:
        raise error_for(response)
