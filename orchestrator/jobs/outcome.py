"""What a job kind may hand back besides a bare result (see :class:`JobOutcome`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RowsWrite:
    """Rows a kind records in the same statement as its job's success.

    ``sql`` is the body of one data-modifying CTE; it may read the ``job`` CTE (``id``, ``owner_id`` of the
    job that is finishing, empty when the job is no longer this worker's, so nothing is written then).
    It must not modify the job's own row (PostgreSQL applies only one change per row and statement).
    Its parameter names must not clash with the store's (``job_id``, ``worker_id``, ``result``, ``events``);
    ``casts`` gives the types of those Postgres cannot infer (``{"data": "bytea[]"}``).
    """

    sql: str
    params: Mapping[str, Any]
    casts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    """What a kind may return instead of a bare result: its ``job.artifact`` events (in order) and rows,
    committed together with ``job.succeeded`` -- one round trip, and never announced unless it succeeded.
    """

    result: Mapping[str, Any]
    artifacts: Sequence[Mapping[str, Any]] = ()
    rows: RowsWrite | None = None
