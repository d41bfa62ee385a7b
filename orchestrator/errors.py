"""The service's exception tree. Each error knows its HTTP status and problem type slug.

The problem middleware (:mod:`orchestrator.api.problems`) renders any of them as
``application/problem+json`` (RFC 9457).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

PROBLEM_BASE = "https://lora-atelier.dev/problems/"
DEFAULT_ERROR_TYPE = "invalid"


class AtelierError(Exception):
    """Base of every error the API reports deliberately."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body for this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(AtelierError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJson(BadRequest):
    slug, title = "malformed-json", "Malformed JSON"


class ValidationFailed(AtelierError):
    """The body parsed but broke the contract. ``errors`` items are ``{field, reason, type}``: the field's
    path, the reason in plain words and a machine-readable type (``invalid`` when nothing more precise
    is known)."""

    status, slug, title = 422, "validation-failed", "Validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        errors = [{"type": DEFAULT_ERROR_TYPE, **error} for error in errors]
        first = errors[0] if errors else {"field": "", "reason": "invalid"}
        summary = detail or f"{first['field'] or 'body'}: {first['reason']}"
        super().__init__(summary, extra={"errors": errors})
        self.errors = errors


class Unauthorized(AtelierError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(AtelierError):
    """The caller is known but may not do this (e.g. an API key without the admin flag)."""

    status, slug, title = 403, "forbidden", "Forbidden"


class ContentRefused(AtelierError):
    """The content policy refused a request's text or image; ``errors`` name each field with its rule.

    Nothing was queued or stored. ``rule`` is the rule id (``minors_sexual``, ``nsfw_text``, ``nsfw_image``);
    ``request_id`` finds the refusal in the audit log.
    """

    status, slug, title = 422, "content-policy", "Refused by the content policy"

    def __init__(self, rule: str, errors: list[dict[str, Any]], detail: str, request_id: str) -> None:
        super().__init__(detail, extra={"rule": rule, "errors": errors, "request_id": request_id})
        self.rule = rule
        self.errors = errors


class NotFound(AtelierError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(AtelierError):
    status, slug, title = 409, "conflict", "Conflict"


class IllegalTransition(Conflict):
    """A job state change that the state machine forbids (the guarded UPDATE matched no row)."""

    slug, title = "illegal-transition", "Illegal job state transition"


class PayloadTooLarge(AtelierError):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(AtelierError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ServiceUnavailable(AtelierError):
    status, slug, title = 503, "unavailable", "Service unavailable"


def field_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's error location as a field path: ``loras[1].strength_model``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_errors(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> list[dict[str, Any]]:
    """pydantic errors as ``[{field, reason, type}]`` (``type`` is pydantic's error type)."""
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown field"
        errors.append({"field": field_path(loc), "reason": reason, "type": err["type"]})
    return errors
