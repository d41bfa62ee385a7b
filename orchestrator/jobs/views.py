"""How a job is shown outside the service: in API answers and in webhook bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.db.models import Job
from orchestrator.jobs.states import Status


class JobOut(BaseModel):
    """A job as clients see it."""

    id: uuid.UUID
    kind: str
    status: Status
    priority: int
    payload: dict[str, Any]
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = Field(None, description="{class, message, retryable} when the job failed.")
    progress: dict[str, Any] | None = Field(None, description="The latest job.progress data.")
    attempts: int
    max_attempts: int
    backend: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    events_url: str = Field(description="SSE stream of this job's events.")

    @classmethod
    def of(cls, job: Job) -> JobOut:
        """From a jobs row."""
        return cls(
            id=job.id,
            kind=job.kind,
            status=Status(job.status),
            priority=job.priority,
            payload=job.payload,
            result=job.result,
            error=job.error,
            progress=job.progress,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            backend=job.backend,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            events_url=f"/v1/jobs/{job.id}/events",
        )


class WebhookPayload(BaseModel):
    """The body of a webhook, shaped as Standard Webhooks recommends: `type`, `timestamp` and `data`."""

    type: str = Field(description="job.succeeded, job.failed or job.cancelled.")
    timestamp: datetime = Field(description="When the job ended.")
    data: JobOut = Field(description="The job as `GET /v1/jobs/{id}` shows it.")
