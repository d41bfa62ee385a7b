"""Request and response models of /v1/webhooks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.schemas import Page, PageQuery
from orchestrator.jobs.webhook_secrets import SigningSecret


class SecretOut(BaseModel):
    """One signing secret."""

    secret: str = Field(description="`whsec_<base64>`: give it to your Standard Webhooks verifier.")
    created_at: datetime
    expires_at: datetime | None = Field(None, description="Set on a rotated-out secret: it signs until then.")


class WebhookSecrets(BaseModel):
    """The caller's secrets that sign deliveries now: the current one first, then rotated ones still in grace."""

    current: SecretOut
    previous: list[SecretOut] = Field(default_factory=list)

    @classmethod
    def of(cls, secrets: list[SigningSecret]) -> WebhookSecrets:
        """From the stored secrets (current first)."""
        shown = [SecretOut(secret=s.secret, created_at=s.created_at, expires_at=s.expires_at) for s in secrets]
        return cls(current=shown[0], previous=shown[1:])


class RotateSecret(BaseModel):
    """How long the secret being replaced keeps signing (alongside the new one)."""

    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(86_400, ge=0, le=30 * 86_400, description="Seconds the old secret stays valid; 0 = none.")


class DeliveryOut(BaseModel):
    """One webhook message to one URL: its state and what went wrong last."""

    id: uuid.UUID
    message_id: uuid.UUID = Field(description="The `webhook-id` header: the same for retries and redeliveries.")
    job_id: uuid.UUID
    event: str = Field(description="job.succeeded, job.failed or job.cancelled.")
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None = None
    created_at: datetime
    next_attempt_at: datetime | None = Field(None, description="When a pending delivery is tried next.")
    delivered_at: datetime | None = None
    redelivery_of: uuid.UUID | None = Field(None, description="The delivery this one sends again.")


class DeliveryList(Page[DeliveryOut]):
    """A page of deliveries, newest first."""


class DeliveryQuery(PageQuery):
    """Filters for the delivery listing."""

    status: Literal["pending", "delivered", "failed"] | None = Field(None, description="Only deliveries in it.")
    job_id: uuid.UUID | None = Field(None, description="Only this job's deliveries.")
