"""One job event as it travels from the ``job_events`` table to SSE clients."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.events.types import TERMINAL_EVENTS


@dataclass(frozen=True, slots=True)
class JobEventRecord:
    """A committed event row. ``id`` is its global sequence number and its SSE id."""

    id: int
    job_id: uuid.UUID
    owner_id: uuid.UUID
    type: str
    data: Mapping[str, Any]
    created_at: datetime
    frame: bytes = field(init=False, repr=False, compare=False)
    chunked_frame: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frame = encode_sse(self)
        object.__setattr__(self, "frame", frame)
        # the same message as one HTTP/1.1 chunk, for writing straight into a chunked response
        object.__setattr__(self, "chunked_frame", b"%x\r\n%s\r\n" % (len(frame), frame))

    @property
    def is_terminal(self) -> bool:
        """True for job.succeeded, job.failed and job.cancelled."""
        return self.type in TERMINAL_EVENTS

    def as_json(self) -> dict[str, Any]:
        """The event as the ``data:`` JSON clients receive."""
        return {"job_id": str(self.job_id), **self.data, "at": self.created_at.isoformat()}

    @classmethod
    def from_row(cls, row: Any, *, id_column: str = "id") -> JobEventRecord:
        """Build from a database row (a mapping with the ``job_events`` columns; the id under ``id_column``)."""
        data = row["data"]
        if isinstance(data, str):  # raw asyncpg hands jsonb over as text
            data = json.loads(data)
        return cls(
            id=row[id_column],
            job_id=row["job_id"],
            owner_id=row["owner_id"],
            type=row["type"],
            data=data,
            created_at=row["created_at"],
        )


def encode_sse(event: JobEventRecord) -> bytes:
    """The complete SSE message for an event; computed once and shared by every subscriber."""
    payload = json.dumps(event.as_json(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.id}\nevent: {event.type}\ndata: {payload}\n\n".encode()
