"""The job state machine: which status may follow which, and the event each change writes."""

from __future__ import annotations

from enum import StrEnum

from orchestrator.events.types import EventType


class Status(StrEnum):
    """A job's status."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

# target status -> the statuses it may be reached from
ALLOWED_FROM: dict[Status, frozenset[Status]] = {
    Status.RUNNING: frozenset({Status.QUEUED}),
    Status.QUEUED: frozenset({Status.RUNNING}),
    Status.SUCCEEDED: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.RUNNING}),
    Status.CANCELLED: frozenset({Status.QUEUED, Status.RUNNING}),
}

# the event written by each transition, by target status
TRANSITION_EVENT: dict[Status, EventType] = {
    Status.RUNNING: EventType.STARTED,
    Status.QUEUED: EventType.RETRYING,
    Status.SUCCEEDED: EventType.SUCCEEDED,
    Status.FAILED: EventType.FAILED,
    Status.CANCELLED: EventType.CANCELLED,
}
