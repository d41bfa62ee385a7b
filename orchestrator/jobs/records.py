"""The job records passed between acceptance, the scheduler's claims, the worker and the kinds."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.jobs.idempotency import IdempotencyClaim


@dataclass(frozen=True)
class NewJob:
    """A job to accept."""

    owner_id: uuid.UUID
    kind: str
    payload: Mapping[str, Any]
    priority: int = 0
    max_attempts: int = 3
    webhook_url: str | None = None
    #: What the job needs loaded on its backend (checkpoint + LoRA set), for the scheduler's affinity.
    affinity_key: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    #: The request's Idempotency-Key and answer, recorded in the statement that creates the job.
    idempotency: IdempotencyClaim | None = None


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker has claimed and now runs."""

    id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    max_attempts: int
    #: The backend of the previous attempt (where a retry looks for its earlier run first).
    backend: str | None
    #: The lane the scheduler chose for it: a ComfyUI backend's URL for kinds that run on backends.
    lane: str | None = None
    affinity_key: str | None = None
