"""The LoRA Atelier client: a sync and an asyncio client for every operation of the API, event streams that
resume across dropped connections, typed models generated from the API's OpenAPI document, typed errors,
and a Standard Webhooks verifier. The ``atelier`` command line is :mod:`atelier_client.cli`.
"""

from __future__ import annotations

from atelier_client.async_client import AsyncClient
from atelier_client.client import Client
from atelier_client.errors import (
    ApiError,
    AtelierError,
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    StreamLost,
    Unauthorized,
    ValidationFailed,
)
from atelier_client.events import Event
from atelier_client.webhooks import WebhookVerificationError, verify_webhook

__version__ = "0.1.0"
__all__ = [
    "ApiError",
    "AsyncClient",
    "AtelierError",
    "BadRequest",
    "Client",
    "Conflict",
    "Event",
    "FieldError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "StreamLost",
    "Unauthorized",
    "ValidationFailed",
    "WebhookVerificationError",
    "verify_webhook",
]
