"""Job events as the SDK hands them out, and the resumption rules shared by the sync and async clients.

A stream is followed across dropped connections: every reconnect sends ``Last-Event-ID`` with the id of the
last event handed out, so the service replays exactly what was missed; an event at or below that id (none
should come) is dropped rather than handed out twice. Reconnects back off exponentially with jitter from the
server's ``retry:`` hint (or half a second) up to ``max_delay_s``, and give up with :class:`StreamLost` after
``max_retries`` attempts in a row that brought no event. A job's stream ends after its terminal event, or when
the service answers 204 (the client already has it).
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import ServerSentEvent
from pydantic import BaseModel

from atelier_client.errors import ApiError, ServiceUnavailable, StreamLost, error_for
from atelier_client.models import ArtifactData, EventData, FailedData, PreviewData, ProgressData, RetryingData

TERMINAL = frozenset({"job.succeeded", "job.failed", "job.cancelled"})
_DATA_MODELS: dict[str, type[BaseModel]] = {
    "job.progress": ProgressData,
    "job.preview": PreviewData,
    "job.artifact": ArtifactData,
    "job.retrying": RetryingData,
    "job.failed": FailedData,
}


@dataclass(frozen=True)
class Event:
    """One job event: ``id`` (its sequence number), ``type`` (``job.progress``, ...) and ``data``."""

    id: int
    type: str
    data: dict[str, Any]

    @property
    def job_id(self) -> uuid.UUID:
        """The job the event belongs to."""
        return uuid.UUID(str(self.data["job_id"]))

    @property
    def is_terminal(self) -> bool:
        """True for job.succeeded, job.failed and job.cancelled: nothing follows for this job."""
        return self.type in TERMINAL

    def model(self) -> Any:
        """The data as its typed model (``ProgressData`` for job.progress, ...; ``EventData`` otherwise)."""
        return _DATA_MODELS.get(self.type, EventData).model_validate(self.data)

    @classmethod
    def from_sse(cls, sse: ServerSentEvent) -> Event:
        """From a parsed SSE message."""
        return cls(id=int(sse.id), type=sse.event, data=json.loads(sse.data))


@dataclass
class Resumption:
    """Where a followed stream stands: the last id handed out and the reconnect back-off."""

    after: int | None = None
    max_retries: int = 10
    max_delay_s: float = 15.0
    base_delay_s: float = 0.5
    failures: int = 0
    reconnects: int = 0
    last_error: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        """The request headers of the next connection."""
        return {"Accept": "text/event-stream"} | ({"Last-Event-ID": str(self.after)} if self.after is not None else {})

    def accept(self, sse: ServerSentEvent) -> Event | None:
        """The event to hand out, or None (a comment, a retry hint, an id already handed out)."""
        if sse.retry is not None:
            self.base_delay_s = max(0.05, sse.retry / 1000)
        if not sse.data or not sse.id.isdigit():
            return None
        event = Event.from_sse(sse)
        if self.after is not None and event.id <= self.after:
            return None
        self.after = event.id
        self.failures = 0
        return event

    def check(self, response: httpx.Response) -> bool:
        """After the answer's headers: True to read the stream, False when it is over (204). Raises the
        API's error for an answer that retrying cannot fix (401, 404, 422, ...)."""
        if response.status_code == 204:
            return False
        if response.is_success:
            return True
        error = error_for(response)
        if isinstance(error, ServiceUnavailable) or error.status >= 500 or error.status == 429:
            raise _Retry(str(error))
        raise error

    def next_delay(self, reason: str) -> float:
        """Seconds to wait before reconnecting; :class:`StreamLost` once ``max_retries`` failed in a row."""
        self.failures += 1
        self.reconnects += 1
        self.last_error = reason
        if self.failures > self.max_retries:
            raise StreamLost(f"gave up after {self.max_retries} reconnects without an event: {reason}")
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (self.failures - 1))
        return delay * random.uniform(0.5, 1.0) if self.failures > 1 else delay


class _Retry(Exception):
    """A connection attempt that may succeed later (transport error, 5xx, 429)."""


RETRYABLE = (httpx.TransportError, _Retry)
__all__ = ["RETRYABLE", "TERMINAL", "ApiError", "Event", "Resumption"]
