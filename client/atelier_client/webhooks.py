"""Verifying the service's webhooks in a receiver, with the ``standardwebhooks`` library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from atelier_client.models import WebhookPayload

__all__ = ["WebhookVerificationError", "verify_webhook"]


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> WebhookPayload:
    """Check a delivery's signature and timestamp (5 minutes' tolerance: replays fail) and return its payload.

    ``body`` must be the raw request body, ``headers`` the request's headers (any case), ``secret`` your
    ``whsec_`` secret. Raises :class:`WebhookVerificationError` when anything does not match.
    """
    payload: Any = Webhook(secret).verify(body, dict(headers))
    return WebhookPayload.model_validate(payload)
