"""SSE streams of job events, resumable with ``Last-Event-ID`` (or ``?after=N``).

``/v1/jobs/{id}/events`` starts with the job's whole history; ``/v1/events`` (all of the caller's jobs)
starts live, and replays only from a ``Last-Event-ID`` or ``?after=`` the client sends.

A stream subscribes to the live feed *first* (buffering), notes the feed's cursor, replays
``(after, cursor]`` from the table, then goes live: buffered and later events above what was sent
are written straight into the connection by the broadcaster. The feed releases ids in order and
only once settled, so the seam has neither a gap nor a duplicate.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterable

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from orchestrator.api.auth import OWNER
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.app_keys import BROADCASTER, ENGINE, FEED, METRICS, SETTINGS
from orchestrator.errors import ValidationFailed
from orchestrator.events.broadcaster import EndReason
from orchestrator.events.model import JobEventRecord
from orchestrator.jobs.queries import REPLAY_PAGE, get_job, last_terminal_event_id, replay_events

router = Router()
MAX_EVENT_ID = 2**63 - 1


def resume_point(request: web.Request) -> int | None:
    """The last event id the client has: ``Last-Event-ID`` header, else ``?after=``; None when it sent neither."""
    header = request.headers.get("Last-Event-ID")
    name, raw = ("Last-Event-ID", header) if header is not None else ("after", request.query.get("after"))
    if raw is None:
        return None
    raw = raw.strip() or "0"
    if not (raw.isascii() and raw.isdigit() and int(raw) <= MAX_EVENT_ID):
        raise ValidationFailed([{"field": name, "reason": "must be a non-negative event id", "type": "event_id"}])
    return int(raw)


class _Stream:
    """Writes replayed frames to one SSE response and remembers the last id sent."""

    def __init__(self, response: EventSourceResponse, after: int) -> None:
        self.response = response
        self.last_id = after

    async def send(self, events: Iterable[JobEventRecord]) -> bool:
        """Send the events above ``last_id``; True when one of them ended the job."""
        fresh = [e for e in events if e.id > self.last_id]
        if not fresh:
            return False
        await self.response.write(b"".join(e.frame for e in fresh))
        self.last_id = fresh[-1].id
        return any(e.is_terminal for e in fresh)


async def _stream(request: web.Request, job_id: uuid.UUID | None) -> web.StreamResponse:
    app = request.app
    owner_id = request[OWNER]
    resume = resume_point(request)
    if job_id is not None:
        await get_job(app[ENGINE], job_id, owner_id)  # 404 for another owner's job
        if resume and await _has_terminal(request, job_id, resume):
            # 204 is how a server tells EventSource not to reconnect: this stream has nothing more to say
            return web.Response(status=204)
    subscription = app[BROADCASTER].subscribe(owner_id, job_id)  # buffers live events from here on
    upto = app[FEED].cursor
    # A job's stream starts with its history; the all-jobs stream is live unless the client resumes.
    after = resume if resume is not None else (0 if job_id is not None else upto)
    # Clients that connected together must not all ping together: spread each one's interval by ±10 %.
    response = EventSourceResponse(ping_interval=app[SETTINGS].sse_ping_interval_s * random.uniform(0.9, 1.1))
    response.headers["X-Accel-Buffering"] = "no"
    try:
        await response.prepare(request)
        await response.write(b"retry: %d\n\n" % app[SETTINGS].sse_retry_ms)
        stream = _Stream(response, after)
        if await _replay(request, stream, job_id, upto) or await _already_over(request, stream, job_id):
            return response
        transport = request.transport
        if transport is None or transport.is_closing():
            return response
        subscription.go_live(transport, chunked=response.chunked, sent_up_to=stream.last_id)
        if await subscription.ended is EndReason.DROPPED:
            app[METRICS].sse_dropped.inc()
        return response
    except ConnectionResetError:
        return response
    finally:
        app[BROADCASTER].unsubscribe(subscription)
        with contextlib.suppress(Exception):
            response.stop_streaming()


async def _replay(request: web.Request, stream: _Stream, job_id: uuid.UUID | None, upto: int) -> bool:
    """Send stored events in ``(last sent, upto]``; True when the job's stream is complete."""
    while stream.last_id < upto:
        page = await replay_events(
            request.app[ENGINE], job_id=job_id, owner_id=request[OWNER], after=stream.last_id, upto=upto
        )
        if await stream.send(page) and job_id is not None:
            return True
        if len(page) < REPLAY_PAGE:
            break
    return False


async def _already_over(request: web.Request, stream: _Stream, job_id: uuid.UUID | None) -> bool:
    """True when the client already has this job's terminal event (nothing more will come)."""
    return job_id is not None and await _has_terminal(request, job_id, stream.last_id)


async def _has_terminal(request: web.Request, job_id: uuid.UUID, upto: int) -> bool:
    """True when the job's terminal event is at or below event id ``upto``."""
    terminal = await last_terminal_event_id(request.app[ENGINE], job_id)
    return terminal is not None and terminal <= upto


@router.route(
    "GET",
    "/v1/jobs/{id}/events",
    summary="Stream one job's events (SSE)",
    tag="events",
    produces="text/event-stream",
    event_stream=True,
    errors=(401, 404, 422),
    extra_responses={204: "The client already has the job's last event (`Last-Event-ID` at or past it): stop."},
)
async def job_events(request: web.Request) -> web.StreamResponse:
    """Events of one job; the stream ends after the job's terminal event."""
    return await _stream(request, path_uuid(request, "job"))


@router.route(
    "GET",
    "/v1/events",
    summary="Stream all of the caller's job events (SSE)",
    tag="events",
    produces="text/event-stream",
    event_stream=True,
    errors=(401, 422),
)
async def all_events(request: web.Request) -> web.StreamResponse:
    """Events of every job of the caller, as they happen; never ends by itself."""
    return await _stream(request, None)
