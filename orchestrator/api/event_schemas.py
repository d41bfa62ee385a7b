"""The SSE event payloads as OpenAPI schemas: what ``data:`` holds for each ``event:`` type.

Every payload carries ``job_id`` and ``at`` (when the event was written); kinds may add fields, so the
models allow extra keys. Clients (the SDK included) are generated from these.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.events.types import EventType


class EventData(BaseModel):
    """Fields every event's data has."""

    model_config = ConfigDict(extra="allow")

    job_id: uuid.UUID
    at: datetime = Field(description="When the event was written.")


class ProgressData(EventData):
    """`job.progress`: where a running job is."""

    stage: str = Field(description="What the job is doing: sampling, training, caching, ...")
    step: int
    total: int
    percent: float | None = None
    it_per_s: float | None = Field(None, description="Steps per second, when the engine reports it.")
    eta_s: float | None = Field(None, description="Seconds left, when the engine can tell.")
    loss: float | None = Field(None, description="Training loss at this step.")
    node: str | None = Field(None, description="The ComfyUI node executing.")


class PreviewData(EventData):
    """`job.preview`: a preview image of a running generation."""

    url: str = Field(description="Where the preview image can be fetched (GET, same credentials).")
    mime: str | None = None
    step: int | None = None


class ArtifactData(EventData):
    """`job.artifact`: a file the job produced."""

    kind: str = Field(description="image | lora | sample | checkpoint")
    url: str
    sha256: str | None = None


class RetryingData(EventData):
    """`job.retrying`: the attempt failed and the job is queued again."""

    attempt: int | None = None
    reason: str | None = None


class JobError(BaseModel):
    """Why a job failed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    error_class: str = Field(alias="class", description="A stable slug clients can act on.")
    message: str
    retryable: bool = False


class FailedData(EventData):
    """`job.failed`: the job ended with an error."""

    error: JobError


class SucceededData(EventData):
    """`job.succeeded`: the job ended well; `result` as on the job resource."""

    result: dict[str, Any] | None = None


class JobEvent(BaseModel):
    """One Server-Sent Event as a client parses it: `id:`, `event:` and `data:` (JSON).

    `id` is the event's global sequence number; send it back as `Last-Event-ID` (or `?after=`) to resume.
    """

    id: int = Field(description="The event's sequence number (the SSE `id:` field).")
    event: Literal[
        "job.queued",
        "job.started",
        "job.progress",
        "job.preview",
        "job.artifact",
        "job.retrying",
        "job.succeeded",
        "job.failed",
        "job.cancelled",
    ] = Field(description="The SSE `event:` field.")
    data: ProgressData | PreviewData | ArtifactData | RetryingData | FailedData | SucceededData | EventData = Field(
        description="The SSE `data:` field, one JSON object."
    )


# The mapping the generated clients use to pick a payload model; kept beside the models it names.
DATA_MODELS: dict[str, type[EventData]] = {
    EventType.PROGRESS: ProgressData,
    EventType.PREVIEW: PreviewData,
    EventType.ARTIFACT: ArtifactData,
    EventType.RETRYING: RetryingData,
    EventType.FAILED: FailedData,
    EventType.SUCCEEDED: SucceededData,
}
