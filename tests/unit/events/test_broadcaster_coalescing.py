"""Issue 8, item 6: a released batch costs one write per subscriber, not one per event and subscriber."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from orchestrator.events.broadcaster import Broadcaster, EndReason
from orchestrator.events.model import JobEventRecord


class Transport:
    """Records writes like an asyncio transport with an empty write buffer."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def _events(owner: uuid.UUID, job: uuid.UUID, first_id: int, types: list[str]) -> list[JobEventRecord]:
    at = datetime.now(UTC)
    return [JobEventRecord(first_id + i, job, owner, kind, {}, at) for i, kind in enumerate(types)]


def _unchunk(data: bytes) -> bytes:
    size, _, rest = data.partition(b"\r\n")
    assert rest.endswith(b"\r\n")
    body = rest[:-2]
    assert len(body) == int(size, 16)
    return body


async def test_each_follower_gets_one_write_per_batch_with_every_event_in_order() -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    broadcaster = Broadcaster()
    transports = [Transport() for _ in range(3)]
    for transport in transports:
        broadcaster.subscribe(owner).go_live(transport, chunked=True, sent_up_to=0)  # type: ignore[arg-type]
    types = ["job.queued", "job.started", "job.progress", "job.progress", "job.progress", "job.succeeded"]
    events = _events(owner, job, 1, types)
    broadcaster.publish(events)
    for transport in transports:
        assert len(transport.writes) == 1
        assert _unchunk(transport.writes[0]) == b"".join(e.frame for e in events)
    assert transports[0].writes[0] is transports[1].writes[0]  # joined once, shared


async def test_a_subscriber_that_has_part_of_a_batch_gets_only_the_rest() -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    broadcaster = Broadcaster()
    transport = Transport()
    broadcaster.subscribe(owner).go_live(transport, chunked=False, sent_up_to=12)  # type: ignore[arg-type]
    events = _events(owner, job, 10, ["job.queued", "job.started", "job.progress", "job.progress"])
    broadcaster.publish(events)
    assert transport.writes == [events[3].frame]


async def test_a_job_stream_ends_with_its_terminal_event_and_buffered_events_flush_at_once() -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    broadcaster = Broadcaster()
    sub = broadcaster.subscribe(owner, job)
    events = _events(owner, job, 1, ["job.queued", "job.started", "job.succeeded"])
    broadcaster.publish(events[:2])  # still replaying: buffered
    transport = Transport()
    sub.go_live(transport, chunked=False, sent_up_to=1)  # type: ignore[arg-type]
    assert transport.writes == [events[1].frame]
    broadcaster.publish(events[2:])
    assert transport.writes[-1] == events[2].frame
    assert sub.ended.result() is EndReason.TERMINAL


class SlowTransport(Transport):
    """A transport whose writes cost loop time (like 2,000 sockets' worth of writes)."""

    def write(self, data: bytes) -> None:
        spin_until = time.perf_counter() + 0.005
        while time.perf_counter() < spin_until:
            pass
        super().write(data)


async def test_an_expensive_round_is_followed_by_a_pause_whose_events_go_out_together() -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    broadcaster = Broadcaster()
    transport = SlowTransport()
    broadcaster.subscribe(owner).go_live(transport, chunked=False, sent_up_to=0)  # type: ignore[arg-type]
    events = _events(owner, job, 1, ["job.queued", "job.started", "job.progress", "job.succeeded"])
    broadcaster.publish(events[:1])  # idle: written at once
    assert transport.writes == [events[0].frame]
    broadcaster.publish(events[1:2])  # the last round took 5 ms: this one waits as long
    broadcaster.publish(events[2:])
    assert len(transport.writes) == 1
    await broadcaster.delivered()
    assert transport.writes[1:] == [b"".join(e.frame for e in events[1:])]
