"""Fan-out of settled events to in-process subscribers, each with a bounded queue."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable

from orchestrator.events.model import JobEventRecord


class SubscriberDropped(Exception):
    """The subscriber fell too far behind and was dropped; it should resume by event id."""


class Subscription:
    """A bounded queue of events for one SSE client (one job, or all of an owner's jobs)."""

    def __init__(self, owner_id: uuid.UUID, job_id: uuid.UUID | None, limit: int) -> None:
        self.owner_id = owner_id
        self.job_id = job_id
        self._limit = limit
        self._queue: deque[JobEventRecord] = deque()
        self._ready = asyncio.Event()
        self.dropped = False

    def offer(self, event: JobEventRecord) -> bool:
        """Queue an event; False (and the subscription is dropped) when the queue is full."""
        if self.dropped:
            return False
        if len(self._queue) >= self._limit:
            self.close()
            return False
        self._queue.append(event)
        self._ready.set()
        return True

    def close(self) -> None:
        """End this subscription: its reader gets SubscriberDropped."""
        self.dropped = True
        self._queue.clear()
        self._ready.set()

    async def next_batch(self) -> list[JobEventRecord]:
        """Wait for events and return all that are queued. Raises SubscriberDropped."""
        await self._ready.wait()
        if self.dropped:
            raise SubscriberDropped
        batch = list(self._queue)
        self._queue.clear()
        self._ready.clear()
        return batch


class Broadcaster:
    """Routes each released event to the subscribers of its job and of its owner."""

    def __init__(self, queue_limit: int = 1000) -> None:
        self._queue_limit = queue_limit
        self._by_job: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._by_owner: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self.dropped_total = 0

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return sum(len(s) for s in self._by_job.values()) + sum(len(s) for s in self._by_owner.values())

    def subscribe(self, owner_id: uuid.UUID, job_id: uuid.UUID | None = None) -> Subscription:
        """Open a subscription to one job, or (``job_id`` None) to all of the owner's jobs."""
        sub = Subscription(owner_id, job_id, self._queue_limit)
        if job_id is None:
            self._by_owner[owner_id].add(sub)
        else:
            self._by_job[job_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Close a subscription (idempotent)."""
        index, key = (self._by_owner, sub.owner_id) if sub.job_id is None else (self._by_job, sub.job_id)
        subs = index.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del index[key]

    def close_all(self) -> None:
        """Drop every subscription (at shutdown): their streams end and clients resume elsewhere."""
        for index in (self._by_job, self._by_owner):
            for subs in index.values():
                for sub in subs:
                    sub.close()
            index.clear()

    def publish(self, events: Iterable[JobEventRecord]) -> None:
        """Deliver events, in order, to every matching subscriber; drop the ones that are full."""
        for event in events:
            self._offer_all(self._by_job.get(event.job_id), event)
            self._offer_all(self._by_owner.get(event.owner_id), event)

    def _offer_all(self, subs: set[Subscription] | None, event: JobEventRecord) -> None:
        if not subs:
            return
        full = [sub for sub in subs if not sub.offer(event)]
        for sub in full:
            self.dropped_total += 1
            self.unsubscribe(sub)
