"""Fan-out of settled events to SSE subscribers.

A subscription has two phases. While its stream replays stored events it *buffers* live events
in a bounded queue. Once the replay is written it goes *live*: the broadcaster then writes the
pre-encoded frames straight into the subscriber's transport, in the same loop iteration that
released them, with no per-subscriber task switch (measured: the per-subscriber-task path gave
p99 365 ms for 5,000 subscribers, this one is in benchmarks/bench_sse_fanout.py). The bound of a
live subscriber is its transport's write buffer: a client that lets it grow past the limit is
dropped and resumes by event id. One slow client never delays another.

Writes are coalesced per released batch: the events of one batch that go to one job's (or one
owner's) subscribers are joined once into one chunk, and each of those subscribers gets one
``write``. Writing frame by frame cost one write call per event and subscriber: under a burst of
1,000 noop jobs (6 events each) with 1,000 followers per owner that was 6 million writes, tens of
seconds of the event loop in which no request was answered (benchmarks/bench_submit_under_fanout.py).
Rounds are paced (see :class:`Broadcaster`): fan-out never takes more than a quarter of the event loop, and
a busy service sends larger batches, so the cost per event falls as the load rises.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from enum import Enum

from orchestrator.events.model import JobEventRecord


class EndReason(Enum):
    """Why a subscription ended."""

    TERMINAL = "the job ended"
    DROPPED = "fell too far behind"
    CLOSED = "closed by the service"
    DISCONNECTED = "the client went away"


class FrameRun:
    """Consecutive events (in id order) for one group of subscribers; their frames are joined once, when
    the first subscriber needs them, and the same bytes go to every subscriber that has none of them."""

    __slots__ = ("_chunked", "_plain", "events")

    def __init__(self, events: Sequence[JobEventRecord]) -> None:
        self.events = events
        self._plain: bytes | None = None
        self._chunked: bytes | None = None

    @property
    def first_id(self) -> int:
        """The id of the first event."""
        return self.events[0].id

    @property
    def last_id(self) -> int:
        """The id of the last event."""
        return self.events[-1].id

    def data(self, *, chunked: bool) -> bytes:
        """All the frames, as one HTTP/1.1 chunk when ``chunked``."""
        if self._plain is None:
            self._plain = b"".join(e.frame for e in self.events)
        if not chunked:
            return self._plain
        if self._chunked is None:
            self._chunked = b"%x\r\n%s\r\n" % (len(self._plain), self._plain)
        return self._chunked

    def after(self, last_id: int, *, chunked: bool) -> bytes:
        """The frames of the events above ``last_id`` (a subscriber that already has some of them)."""
        if last_id < self.first_id:
            return self.data(chunked=chunked)
        return b"".join(e.chunked_frame if chunked else e.frame for e in self.events if e.id > last_id)

    @property
    def terminal(self) -> bool:
        """True when one of the events ends its job."""
        return any(e.is_terminal for e in self.events)


class Subscription:
    """One SSE client: one job, or all of an owner's jobs."""

    def __init__(self, owner_id: uuid.UUID, job_id: uuid.UUID | None, queue_limit: int, byte_limit: int) -> None:
        self.owner_id = owner_id
        self.job_id = job_id
        self._queue_limit = queue_limit
        self._byte_limit = byte_limit
        self._buffer: deque[JobEventRecord] = deque()
        self._transport: asyncio.WriteTransport | None = None
        self._chunked = True
        self.last_id = 0
        self.ended: asyncio.Future[EndReason] = asyncio.get_running_loop().create_future()

    def _end(self, reason: EndReason) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)
        self._buffer.clear()

    def go_live(self, transport: asyncio.WriteTransport, *, chunked: bool, sent_up_to: int) -> None:
        """Switch from buffering to direct writes, first flushing what was buffered above ``sent_up_to``."""
        self._transport, self._chunked, self.last_id = transport, chunked, sent_up_to
        buffered, self._buffer = list(self._buffer), deque()
        if buffered:
            self.offer_run(FrameRun(buffered))

    def offer(self, event: JobEventRecord) -> bool:
        """Buffer or write one event; False once the subscription has ended."""
        return self.offer_run(FrameRun([event]))

    def offer_run(self, run: FrameRun) -> bool:
        """Buffer or write consecutive events; False once the subscription has ended."""
        if self.ended.done():
            return False
        if self._transport is None:
            if len(self._buffer) + len(run.events) > self._queue_limit:
                self._end(EndReason.DROPPED)
                return False
            self._buffer.extend(run.events)
            return True
        return self._write(self._transport, run)

    def _write(self, transport: asyncio.WriteTransport, run: FrameRun) -> bool:
        if run.last_id <= self.last_id:
            return True
        if transport.is_closing():
            self._end(EndReason.DISCONNECTED)
            return False
        if transport.get_write_buffer_size() > self._byte_limit:
            self._end(EndReason.DROPPED)
            return False
        transport.write(run.after(self.last_id, chunked=self._chunked))
        self.last_id = run.last_id
        if self.job_id is not None and run.terminal:
            self._end(EndReason.TERMINAL)
        return True

    def close(self) -> None:
        """End the subscription from the service side."""
        self._end(EndReason.CLOSED)

    def disconnect(self) -> None:
        """The client went away (no-op when the subscription already ended)."""
        self._end(EndReason.DISCONNECTED)


class Broadcaster:
    """Routes each released event to the subscribers of its job and of its owner, in fan-out rounds.

    A round writes everything released since the previous one. A round that took longer than
    ``MIN_PACED_ROUND_S`` is followed by a pause of ``PAUSE_RATIO`` times its length (at most
    ``MAX_PAUSE_S``) before the next one: fan-out takes at most a quarter of the event loop, whatever the
    load, so requests keep being answered, and what is released during the pause goes out together in the
    next round (fewer, larger writes as the load grows). A cheap round (few subscribers) is never followed
    by a pause: nothing is delayed then. The pause bounds what pacing adds to delivery latency.
    """

    MIN_PACED_ROUND_S = 0.002
    PAUSE_RATIO = 3.0
    MAX_PAUSE_S = 0.05

    def __init__(
        self,
        *,
        queue_limit: int = 1000,
        byte_limit: int = 256 * 1024,
        observe_round: Callable[[float], None] | None = None,
    ) -> None:
        self._queue_limit = queue_limit
        self._byte_limit = byte_limit
        self._by_job: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._by_owner: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._membership_changed = asyncio.Event()
        self._pending: list[JobEventRecord] = []
        self._next_round_at = 0.0
        self._round: asyncio.TimerHandle | None = None
        self._observe_round = observe_round
        self._round_done = asyncio.Event()

    def _membership_change(self) -> None:
        self._membership_changed.set()
        self._membership_changed = asyncio.Event()

    async def wait_for_subscriber_count(self, count: int) -> None:
        """Return once exactly ``count`` subscriptions are open (woken by every (un)subscribe)."""
        while True:
            changed = self._membership_changed
            if self.subscriber_count == count:
                return
            await changed.wait()

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return sum(map(len, self._by_job.values())) + sum(map(len, self._by_owner.values()))

    def subscribe(self, owner_id: uuid.UUID, job_id: uuid.UUID | None = None) -> Subscription:
        """Open a (buffering) subscription to one job, or with ``job_id`` None to all the owner's jobs."""
        sub = Subscription(owner_id, job_id, self._queue_limit, self._byte_limit)
        index, key = self._index_of(sub)
        index[key].add(sub)
        self._membership_change()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscription (idempotent); one that had not ended counts as disconnected."""
        sub.disconnect()
        index, key = self._index_of(sub)
        subs = index.get(key)
        if subs is not None and sub in subs:
            subs.discard(sub)
            if not subs:
                del index[key]
            self._membership_change()

    def _index_of(self, sub: Subscription) -> tuple[dict[uuid.UUID, set[Subscription]], uuid.UUID]:
        return (self._by_owner, sub.owner_id) if sub.job_id is None else (self._by_job, sub.job_id)

    def close_all(self) -> None:
        """End every subscription (at shutdown); clients resume elsewhere by event id."""
        if self._round is not None:
            self._round.cancel()
            self._round = None
        self._pending.clear()
        for index in (self._by_job, self._by_owner):
            for subs in index.values():
                for sub in subs:
                    sub.close()
            index.clear()
        self._membership_change()

    def publish(self, events: Iterable[JobEventRecord]) -> None:
        """Deliver released events (in order): now, or in the next round when the last one needs a pause."""
        self._pending.extend(events)
        if self._round is not None or not self._pending:
            return
        loop = asyncio.get_running_loop()
        wait = self._next_round_at - loop.time()
        if wait <= 0:
            self._fan_out()
        else:
            self._round = loop.call_later(wait, self._fan_out)

    def _fan_out(self) -> None:
        """One round: one write per subscriber for all of its events released since the last round."""
        self._round = None
        events, self._pending = self._pending, []
        started = time.perf_counter()
        for_jobs: dict[uuid.UUID, list[JobEventRecord]] = {}
        for_owners: dict[uuid.UUID, list[JobEventRecord]] = {}
        for event in events:
            if event.job_id in self._by_job:
                for_jobs.setdefault(event.job_id, []).append(event)
            if event.owner_id in self._by_owner:
                for_owners.setdefault(event.owner_id, []).append(event)
        for job_id, job_events in for_jobs.items():
            self._offer_all(self._by_job.get(job_id), FrameRun(job_events))
        for owner_id, owner_events in for_owners.items():
            self._offer_all(self._by_owner.get(owner_id), FrameRun(owner_events))
        took = time.perf_counter() - started
        if self._observe_round is not None:
            self._observe_round(took)
        pause = min(took * self.PAUSE_RATIO, self.MAX_PAUSE_S) if took >= self.MIN_PACED_ROUND_S else 0.0
        self._next_round_at = asyncio.get_running_loop().time() + pause
        self._round_done.set()
        self._round_done = asyncio.Event()

    async def delivered(self) -> None:
        """Return once everything published so far has been fanned out."""
        while self._pending:
            await self._round_done.wait()

    def _offer_all(self, subs: set[Subscription] | None, run: FrameRun) -> None:
        if not subs:
            return
        for sub in [sub for sub in subs if not sub.offer_run(run)]:
            self.unsubscribe(sub)
