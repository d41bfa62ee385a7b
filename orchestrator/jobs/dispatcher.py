"""What this worker runs next, and where: claims for free lanes, and jobs handed over at acceptance.

Two ways a job reaches the worker:

* **Claim.** Whenever a lane has room (a backend can take a prompt, or a worker slot is free) and the queue may
  have something (a notification, a finished job, the idle poll), the scheduler picks job and lane together
  (:mod:`orchestrator.jobs.claims`).
* **Handoff.** A job accepted by this process while one of its lanes is idle is written as running on that lane
  in its acceptance statement (:mod:`orchestrator.jobs.group_commit`) and started here at once: no notification
  round trip, no claim statement. It is only offered when no decision is being made (the claim loop is not
  reading the queue) and owners have no caps (a cap needs the claim's slot check). Kinds in ``early_kinds``
  start while that statement's commit is flushed, their writes held until it is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.jobs.claims import JobClaims
from orchestrator.jobs.group_commit import HandoffLane
from orchestrator.jobs.lanes import LaneBook
from orchestrator.jobs.records import ClaimedJob, NewJob
from orchestrator.jobs.scheduling import Policy, QueuedJob, choose

log = logging.getLogger(__name__)

#: After a claim lost every job it chose to other processes, the next try comes this soon (jittered, doubling
#: while the losing goes on, up to :data:`_MAX_CONTENDED_RETRY_S`). Waiting the whole idle poll instead left a
#: worker process's lanes idle beside a full queue: in CI one of two processes ran 0 of 500 jobs.
_FIRST_CONTENDED_RETRY_S = 0.005
#: The longest wait after losing. A lost claim means the queue holds work, so there is no reason to wait longer.
#: With waits doubling up to the idle poll instead (0.5 s in the two-process test, 2 s by default), eight losing
#: rounds in a row can idle a process for over a second beside a full queue (in CI one of two processes once ran
#: 39 of 500 jobs). The cost of the bound: while other processes keep winning, a loser reads the queue and tries
#: at most four jobs every 50 ms; it stops as soon as it wins or a read finds nothing queued.
_MAX_CONTENDED_RETRY_S = 0.05


class ContendedBackoff:
    """How long a worker waits before claiming again after other processes took every job it chose."""

    def __init__(self, first_s: float = _FIRST_CONTENDED_RETRY_S, max_s: float = _MAX_CONTENDED_RETRY_S) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def reset(self) -> None:
        """A claim succeeded: the next loss starts from the shortest wait again."""
        self._next_s = self._first_s

    def next_wait(self, ceiling_s: float) -> float:
        """The wait after one more loss: between half and one and a half of the current step, but never over
        the bound or ``ceiling_s``. The step then doubles, up to the bound."""
        wait_s = min(self._next_s * random.uniform(0.5, 1.5), self._max_s, ceiling_s)
        self._next_s = min(self._next_s * 2, self._max_s)
        return wait_s


class _Tried(enum.Enum):
    """What one turn of the claim loop came to."""

    CLAIMED = "claimed"  # a job was started: try again at once
    NOTHING = "nothing"  # no room, nothing claimable or an error: wait for a wake-up or the idle poll
    CONTENDED = "contended"  # other processes took every job chosen: try again soon


@dataclass(frozen=True)
class SchedulingConfig:
    """The scheduler's knobs (from Settings)."""

    fair: bool = True
    affinity_max_wait_s: float = 60.0
    owner_max_running: int = 0


@dataclass
class _Held:
    lane: str
    kind: str
    loads: bool


class Dispatcher:
    """Fills this worker's free lanes, one decision at a time."""

    def __init__(
        self,
        claims: JobClaims,
        book: LaneBook,
        worker_id: str,
        config: SchedulingConfig,
        *,
        room: Callable[[], int],
        start: Callable[[ClaimedJob, asyncio.Future[bool] | None, asyncio.Future[None] | None], None],
        idle_poll_s: float,
        early_kinds: frozenset[str] = frozenset(),
    ) -> None:
        self.worker_id = worker_id
        self._claims = claims
        self._book = book
        self._config = config
        self._room = room
        self._start = start
        self._idle_poll_s = idle_poll_s
        self._early_kinds = early_kinds
        self._wake = asyncio.Event()
        self._deciding = asyncio.Lock()
        self._held: dict[uuid.UUID, _Held] = {}
        self._reserved = 0
        self._stopping = False
        self._claim_in_flight = False
        self._task: asyncio.Task[None] | None = None

    @property
    def reserved(self) -> int:
        """Lanes reserved for handoffs not yet delivered."""
        return self._reserved

    def wake(self) -> None:
        """Something may be claimable now (a lane freed, a backend came back)."""
        self._wake.set()

    def queue_changed(self) -> None:
        """Jobs were queued or requeued (anywhere): read the queue again, then try to claim."""
        self._claims.invalidate()
        self._wake.set()

    def policy(self) -> Policy:
        """The scheduler's policy with what the book has learnt about run times."""
        return Policy(
            fair=self._config.fair,
            affinity_max_wait_s=self._config.affinity_max_wait_s,
            owner_max_running=self._config.owner_max_running,
            expected_run_s=self._book.expected_run_s(),
            expected_load_s=self._book.expected_load_s(),
        )

    def start(self) -> None:
        """Start claiming."""
        self._task = asyncio.create_task(self._claim_loop(), name="worker-claim")

    async def stop(self) -> None:
        """Stop claiming and handing off; a claim already sent to the database is waited for, so its job is known."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        if not self._claim_in_flight:
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # -- claims -------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = ContendedBackoff()
        while not self._stopping:
            self._wake.clear()
            tried = await self._claim_once()
            if tried is _Tried.CLAIMED:
                backoff.reset()
                continue
            due_in = self._claims.due_in()  # the empty queue kept ends: a delayed job falls due
            wait_s = self._idle_poll_s if due_in is None else min(self._idle_poll_s, due_in)
            if tried is _Tried.CONTENDED:  # others are claiming, so the queue has work: look again soon
                wait_s = backoff.next_wait(self._idle_poll_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()

    async def _claim_once(self) -> _Tried:
        if self._room() <= 0:
            return _Tried.NOTHING
        lanes = self._book.free()
        if not lanes:
            return _Tried.NOTHING
        async with self._deciding:
            self._claim_in_flight = True
            try:
                backends = frozenset(lane.name for lane in lanes if self._book.is_backend(lane.name))
                claim = await self._claims.claim(self.worker_id, lanes, self.policy(), backends=backends)
            except Exception:
                log.exception("claim failed; retrying after the idle poll")
                return _Tried.NOTHING
            finally:
                self._claim_in_flight = False
            if claim is None:
                return _Tried.CONTENDED if self._claims.contended else _Tried.NOTHING
            self._hold(claim.job, claim.lane.name)
            self._start(claim.job, None, None)
        return _Tried.CLAIMED

    # -- handoffs (orchestrator.jobs.group_commit.Handoff) -------------------------------------------

    def offer(self, job: NewJob) -> HandoffLane | None:
        """Reserve a free lane for a job being accepted, when this worker would start it at once. A job it
        does not take will be queued: the queue is no longer known to be empty (the next job offered does not
        go first past it, though its notification has not come yet)."""
        lane = self._reserve(job)
        if lane is None:
            self._claims.invalidate()
        return lane

    def _reserve(self, job: NewJob) -> HandoffLane | None:
        if self._stopping or self._deciding.locked() or self._config.owner_max_running > 0 or self._room() <= 0:
            return None
        lanes = [lane for lane in self._book.free() if job.kind in lane.kinds]
        if not lanes:
            return None
        queued = QueuedJob(job.id, job.owner_id, job.kind, job.priority, time.time(), job.affinity_key)
        dispatch = choose([queued], lanes, {}, 0.0, time.time(), self.policy())
        if dispatch is None:
            return None
        self._reserved += 1
        self._hold_lane(job.id, job.kind, dispatch.lane.name, job.affinity_key)
        backend = dispatch.lane.name if self._book.is_backend(dispatch.lane.name) else None
        early = job.kind in self._early_kinds
        return HandoffLane(dispatch.lane.name, backend, early=early, first=early and self._claims.known_empty(job.kind))

    def deliver(
        self, job: ClaimedJob, committed: asyncio.Future[bool] | None = None, sent: asyncio.Future[None] | None = None
    ) -> None:
        """Run a job written as running on the lane reserved for it (``committed``: not yet known to be
        committed; its run writes nothing before that future says True; ``sent``: resolved by the run once
        its work went to its engine)."""
        self._reserved -= 1
        self._start(job, committed, sent)

    def decline(self, job: NewJob, lane: HandoffLane) -> None:
        """The job was queued instead: free its lane and look at the queue (which now holds it)."""
        self._reserved -= 1
        self.release(job.id)
        self.queue_changed()

    # -- lanes ----------------------------------------------------------------------------------------

    def _hold(self, job: ClaimedJob, lane: str) -> None:
        self._hold_lane(job.id, job.kind, lane, job.affinity_key)

    def _hold_lane(self, job_id: uuid.UUID, kind: str, lane: str, affinity_key: str | None) -> None:
        loads = self._book.take(lane, affinity_key)
        self._held[job_id] = _Held(lane, kind, loads)

    def release(self, job_id: uuid.UUID, run_s: float | None = None) -> None:
        """The job no longer needs its lane (its engine run ended: learns its run time), or it ended. Either way
        something may be claimable now: a lane, the worker's room (a job that gave its lane back early still
        counts until it ends) or, under owner caps, its owner's slot."""
        held = self._held.pop(job_id, None)
        if held is not None:
            self._book.give_back(held.lane)
            if run_s is not None:
                self._book.record_run(held.kind, run_s, loaded=held.loads)
        if self._config.owner_max_running > 0:
            self._claims.invalidate()  # its owner may have one running job less
        self._wake.set()
