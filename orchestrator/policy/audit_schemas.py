# SPDX-License-Identifier: Apache-2.0
"""Request and response models of GET /v1/audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.db.models import AuditEvent


class AuditQuery(BaseModel):
    """Filters and paging of the audit log."""

    model_config = ConfigDict(extra="forbid")

    rule: str | None = Field(None, description="Only this rule: minors_sexual, nsfw_text or nsfw_image.")
    context: str | None = Field(None, description="Only this context (prompt, workflow_input, generated_image, ...).")
    owner_id: uuid.UUID | None = Field(None, description="Only this owner's events.")
    job_id: uuid.UUID | None = Field(None, description="Only this job's events.")
    since: datetime | None = Field(None, description="Only events at or after this time (ISO 8601).")
    limit: int = Field(50, ge=1, le=200, description="Page size.")
    cursor: str | None = Field(None, description="next_cursor of the previous page.")


class AuditEventOut(BaseModel):
    """One decision of the content policy."""

    id: uuid.UUID
    created_at: datetime
    action: str = Field(description="refused (a request), blocked or blurred (a generated image), rejected (a photo).")
    rule: str
    context: str
    owner_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = Field(None, description="The refused request (its 422 answer names it).")
    job_id: uuid.UUID | None = None
    fields: list[str] = Field(default_factory=list, description="The request fields involved.")
    content_sha256: str | None = Field(None, description="SHA-256 of the refused text (or of the image).")
    excerpt: str | None = Field(None, description="The start of the refused text; never kept for minors_sexual.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Terms found, image score and threshold, ...")

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventOut:
        """From an audit_events row."""
        return cls.model_validate(row, from_attributes=True)


class AuditList(BaseModel):
    """A page of the audit log, newest first."""

    items: list[AuditEventOut]
    next_cursor: str | None = None
