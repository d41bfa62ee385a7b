"""The job event vocabulary: every event a job writes and which of them end its stream."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """The ``event:`` field of every SSE message (DESIGN.md's event schema)."""

    QUEUED = "job.queued"
    STARTED = "job.started"
    PROGRESS = "job.progress"
    PREVIEW = "job.preview"
    ARTIFACT = "job.artifact"
    RETRYING = "job.retrying"
    SUCCEEDED = "job.succeeded"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"


TERMINAL_EVENTS = frozenset({EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED})
