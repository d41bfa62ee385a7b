"""Group commit for job acceptance: concurrent creates share one statement and one commit.

Each accepted job still gets its own row, its own ``job.queued`` event and its own notifications,
all committed before its caller hears back. Requests that arrive while a batch is being written
form the next batch, so a lone request goes straight through (no timer, no added latency) and a
burst pays one round trip and one WAL flush per batch instead of per job.

A job handed to this process's idle worker starts *while its commit is flushed*: the batch then runs
as ``BEGIN``; the statement; ``COMMIT``, and as soon as the statement says the job was written as
running its kind starts (for kinds that may: :attr:`HandoffLane.early`), e.g. a generation's prompt
goes to ComfyUI during the WAL flush, which on a loaded disk is the longest part of acceptance. The
run writes nothing before the commit is known (its context waits for it, the worker too), nothing is
notified before it (NOTIFY is delivered at commit), and the caller's 202 still comes after it. If the
commit fails, the run is withdrawn (its engine work cancelled) and the job's request fails: whether the
commit happened is then unknown, so it is not written again (a committed one is reaped and rerun).

When the worker knows the queue holds nothing of the job's kind (its last read found it empty and no job
notification came since: :attr:`HandoffLane.first`), the job starts *before* the statement runs, which then
writes it as started whatever it finds; the statement commits on its own (no ``BEGIN``/``COMMIT`` round
trips). The prompt reaches ComfyUI before the job is written, not after it (starting it while the job was
written already made it 1.3 ms sooner on the stand-in overhead benchmark). A job queued by another process in
the same moment may be overtaken by it, as it would have been had this one arrived a moment earlier. The same
rules hold: the run writes nothing before the commit is known, and is withdrawn if the job was not written
(its idempotency key was taken first) or the write failed.

A statement that writes only such jobs (a lone request, the usual case) waits until their runs have sent
their work off (a prompt queued on ComfyUI: the kind says so through
:meth:`~orchestrator.jobs.kinds.JobContext.work_sent`), :data:`SENT_WAIT_S` at most; with other jobs in the batch
(a burst) it does not hold them up for those prompts (1,000 concurrent submits with 2,000 SSE followers: p99
740 ms writing at once, 798 ms waiting, medians of 7 runs). Otherwise the
statement, its WAL flush, the 202 and the job's first streamed events run while ComfyUI takes the prompt, and
on a machine with few cores ComfyUI then starts later (it answered our POST after 2.7 ms, the direct
client's after 1.4 ms). Overhead benchmark on 2 cores, interleaved, extra over the direct client, writing at
once / after the prompt was queued: real ComfyUI 6.04 / 4.97 and 5.54 / 4.66 ms, stand-in 5.35 / 4.56 and
5.87 / 4.72 ms. The 202 comes that much later: 5.6 / 6.4 and 4.9 / 7.3 ms after the POST (real ComfyUI).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from orchestrator.db.direct import DirectPool, Sql
from orchestrator.events.model import JobEventRecord
from orchestrator.events.types import EventType
from orchestrator.jobs.idempotency import CLAIM_KEYS_CTE, IdempotencyKeyTaken
from orchestrator.jobs.records import ClaimedJob, NewJob

log = logging.getLogger(__name__)

MAX_BATCH = 256
#: How long a statement waits for the runs that went first to send their work off (see the module's notes):
#: ComfyUI takes a prompt in a few milliseconds; one busy collecting its garbage (0.1-0.6 s) does not hold the
#: acceptance up longer than this.
SENT_WAIT_S = 0.02
Pending = tuple[NewJob, "asyncio.Future[int]"]
#: Per job written: its ``job.queued`` event id, and whether it was written as started (handed off).
Written = dict[uuid.UUID, tuple[int, bool]]


class CommittedEvents(Protocol):
    """Where the events this process commits go (the event feed: it need not read them back)."""

    def writing(self) -> AbstractContextManager[None]:
        """Entered while a write whose events will be offered is under way."""
        ...

    def offer(self, events: list[JobEventRecord]) -> None:
        """Events just committed, in id order."""
        ...


@contextlib.contextmanager
def writing(sink: CommittedEvents | None) -> Iterator[None]:
    """The sink told that a write of events it will be offered is under way (nothing without a sink)."""
    if sink is None:
        yield
        return
    with sink.writing():
        yield


def hand_over(sink: CommittedEvents | None, rows: Sequence[asyncpg.Record]) -> None:
    """Offer ``sink`` the events a write committed (``job_events`` rows, the id as ``event_id``) in id order.
    Never raises: the write is committed either way, and the events' notifications still bring them."""
    if sink is None or not rows:
        return
    try:
        records = [JobEventRecord.from_row(row, id_column="event_id") for row in rows]
        sink.offer(sorted(records, key=lambda record: record.id))
    except Exception:
        log.exception("handing committed events to the event feed failed")


# A job offered to this process's idle worker (``lane`` set) is written as running, with ``job.queued`` then
# ``job.started``, when no queued job of its kind and at least its priority is waiting (it would go first), or
# when the worker started it already (``first``: it knew the queue to be empty); otherwise it is queued like
# the rest. Handing off charges the owner's fair share like a claim does.
_ARRAY_CASTS = {"ids": "uuid[]", "owners": "uuid[]", "kinds": "text[]", "priorities": "int[]", "payloads": "text[]",
                "max_attempts": "int[]", "webhooks": "text[]", "affinity_keys": "text[]", "lanes": "text[]",
                "firsts": "bool[]", "backends": "text[]", "idem_keys": "text[]", "idem_sha256s": "text[]",
                "idem_statuses": "int[]", "idem_responses": "text[]", "idem_locations": "text[]",
                "worker_id": "text"}  # fmt: skip
_CREATE_MANY = Sql(
    """
WITH input AS (
    SELECT * FROM unnest(:ids, :owners, :kinds, :priorities, :payloads, :max_attempts, :webhooks, :affinity_keys,
                         :lanes, :firsts, :backends, :idem_keys, :idem_sha256s, :idem_statuses, :idem_responses,
                         :idem_locations)
        AS t(id, owner_id, kind, priority, payload, max_attempts, webhook_url, affinity_key, lane, first, backend,
             idem_key, idem_sha256, idem_status, idem_response, idem_location)
), """
    + CLAIM_KEYS_CTE
    + """, decided AS (
    SELECT i.*, i.lane IS NOT NULL AND (i.first OR NOT EXISTS (
        SELECT FROM jobs q
        WHERE q.status = 'queued' AND q.kind = i.kind AND q.priority >= i.priority AND q.run_after <= now()
    )) AS started
    FROM input i
    WHERE i.idem_key IS NULL OR i.id IN (SELECT job_id FROM claimed)  -- a taken key: its job is not created
), job AS (
    INSERT INTO jobs (id, owner_id, kind, priority, payload, max_attempts, webhook_url, affinity_key,
                      status, worker_id, attempts, heartbeat_at, started_at, backend)
    SELECT id, owner_id, kind, priority, payload::jsonb, max_attempts, webhook_url, affinity_key,
           CASE WHEN started THEN 'running' ELSE 'queued' END, CASE WHEN started THEN :worker_id END,
           CASE WHEN started THEN 1 ELSE 0 END, CASE WHEN started THEN now() END,
           CASE WHEN started THEN now() END, CASE WHEN started THEN backend END
    FROM decided
    RETURNING id, owner_id, kind, priority, status
), handed AS (
    SELECT owner_id, count(*) AS n FROM job WHERE status = 'running' GROUP BY owner_id
), charged AS (
    UPDATE owner_shares s SET vtime = greatest(s.vtime, c.vtime) + h.n / s.weight
    FROM handed h, fair_clock c WHERE s.owner_id = h.owner_id
    RETURNING s.owner_id
), first_charge AS (
    INSERT INTO owner_shares (owner_id, vtime)
    SELECT h.owner_id, c.vtime + h.n FROM handed h, fair_clock c
    WHERE NOT EXISTS (SELECT FROM owner_shares s WHERE s.owner_id = h.owner_id)
    ON CONFLICT (owner_id) DO NOTHING
    RETURNING owner_id
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT job.id, job.owner_id, e.type, e.data
    FROM job CROSS JOIN LATERAL (VALUES
        (1, 'job.queued', jsonb_build_object('kind', job.kind, 'priority', job.priority)),
        (2, 'job.started', jsonb_build_object('attempt', 1, 'worker', CAST(:worker_id AS text)))
    ) AS e(n, type, data)
    WHERE e.n = 1 OR job.status = 'running'
    ORDER BY job.id, e.n
    RETURNING id, job_id, owner_id, type, data, created_at
)
SELECT event.job_id, event.id AS event_id, event.owner_id, event.type, event.data, event.created_at,
       pg_notify('atelier_events', event.id::text) AS notified,
       CASE WHEN job.status = 'queued' THEN pg_notify('atelier_jobs', event.job_id::text) END AS woke,
       (SELECT count(*) FROM charged) + (SELECT count(*) FROM first_charge) AS owners_charged
FROM event JOIN job ON job.id = event.job_id
""",
    _ARRAY_CASTS,
)


class Handoff(Protocol):
    """This process's worker, able to start a just-accepted job at once instead of waiting for a claim."""

    worker_id: str

    def offer(self, job: NewJob) -> HandoffLane | None:
        """Reserve a free lane for ``job`` (synchronously); None when none is free."""
        ...

    def deliver(
        self, job: ClaimedJob, committed: asyncio.Future[bool] | None = None, sent: asyncio.Future[None] | None = None
    ) -> None:
        """The job was written as running on the reserved lane (``job.lane``): run it. With ``committed``
        (an early start) its commit is still being flushed: the run must write nothing before that future
        says True, and stop when it says False. With ``sent``, the run resolves it once its work went to its
        engine (or once it waits for its commit)."""
        ...

    def decline(self, job: NewJob, lane: HandoffLane) -> None:
        """The job was queued instead (another waited before it): free the reserved lane."""
        ...


@dataclass(frozen=True)
class HandoffLane:
    """A lane reserved for a handoff; ``backend`` when it is an engine backend; ``early`` when the job's kind may
    start before its acceptance is committed; ``first`` when, besides, the worker knows that no job waits that
    would go before it: it then starts before its statement runs, and the statement writes it as started."""

    name: str
    backend: str | None = None
    early: bool = False
    first: bool = False


class AcceptanceBatcher:
    """Writes queued jobs in batches; ``submit`` returns once the job's batch committed.

    With a :class:`Handoff` attached, a job that the local worker has a free lane for is written as running
    there and handed to it directly: no notification round trip and no claim statement before it starts.
    """

    def __init__(self, database: DirectPool) -> None:
        self._database = database
        self._pending: list[Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._handoff: Handoff | None = None
        self._committed: CommittedEvents | None = None

    def on_committed(self, sink: CommittedEvents | None) -> None:
        """Hand the ``job.queued``/``job.started`` events of each committed batch to ``sink``."""
        self._committed = sink

    def attach(self, handoff: Handoff | None) -> None:
        """Hand just-accepted jobs to this worker when it has a free lane (None: stop)."""
        self._handoff = handoff

    async def submit(self, job: NewJob) -> int:
        """Queue one job; returns its job.queued event id once its batch committed. Raises
        :class:`~orchestrator.jobs.idempotency.IdempotencyKeyTaken` when its key was taken first."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="job-acceptance")
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = _next_batch(self._pending)
            handoff = self._handoff
            offers = [handoff.offer(job) if handoff is not None else None for job, _ in batch]
            starts = _EarlyStarts(batch, offers, handoff)
            went_first = starts.start_first()
            try:
                if went_first and starts.all_went_first():
                    await starts.sent(SENT_WAIT_S)  # their work (a prompt to ComfyUI) goes off before the write
                elif went_first:  # a burst: the rest of the batch does not wait for those prompts, one loop pass
                    await asyncio.sleep(0)
                written = await self._write([job for job, _ in batch], offers, before_commit=starts.hook())
            except Exception as exc:
                rest = starts.withdraw(exc)
                self._decline(rest, [lane for (job, _), lane in zip(batch, offers, strict=True) if job not in starts])
                await self._write_one_by_one(rest, exc)
                continue
            except BaseException:  # cancelled (the process stops): the early runs will never learn their commit
                starts.abandon()
                raise
            starts.confirm(written)
            for (job, future), lane in zip(batch, offers, strict=True):
                outcome = written.get(job.id)  # None: its idempotency key was taken first
                if lane is not None and handoff is not None and job not in starts:
                    if outcome is not None and outcome[1]:
                        handoff.deliver(_claimed(job, lane))
                    else:
                        handoff.decline(job, lane)
                _settle(future, outcome)

    def _decline(self, batch: list[Pending], offers: list[HandoffLane | None]) -> None:
        for (job, _), lane in zip(batch, offers, strict=True):
            if lane is not None and self._handoff is not None:
                self._handoff.decline(job, lane)

    async def _write_one_by_one(self, batch: list[Pending], exc: Exception) -> None:
        """A failed batch fails only the jobs that fail on their own (none is handed off then)."""
        if not batch:
            return
        if len(batch) == 1:
            if not batch[0][1].done():
                batch[0][1].set_exception(exc)
            return
        log.warning("a batch of %d jobs failed (%s); writing them one by one", len(batch), exc)
        for job, future in batch:
            try:
                written = (await self._write([job], [None])).get(job.id)
            except Exception as single:
                if not future.done():
                    future.set_exception(single)
            else:
                _settle(future, written)

    async def _write(
        self,
        jobs: Sequence[NewJob],
        offers: Sequence[HandoffLane | None],
        *,
        before_commit: Callable[[Written], None] | None = None,
    ) -> Written:
        """Write the jobs; per job its ``job.queued`` event id and whether it was written as started.
        ``before_commit``: called with that once the statement ran, while its commit is flushed (a transaction
        of its own then, one statement otherwise)."""
        params = {
            "ids": [j.id for j in jobs],
            "owners": [j.owner_id for j in jobs],
            "kinds": [j.kind for j in jobs],
            "priorities": [j.priority for j in jobs],
            "payloads": [json.dumps(dict(j.payload)) for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "webhooks": [j.webhook_url for j in jobs],
            "affinity_keys": [j.affinity_key for j in jobs],
            "lanes": [lane.name if lane else None for lane in offers],
            "firsts": [bool(lane and lane.first) for lane in offers],
            "backends": [lane.backend if lane else None for lane in offers],
            **_idempotency_params(jobs),
            "worker_id": self._handoff.worker_id if self._handoff is not None else None,
        }
        with writing(self._committed):
            if before_commit is None:
                rows = await self._database.fetch(_CREATE_MANY, params)
            else:
                async with self._database.transaction() as conn:
                    rows = await conn.fetch(_CREATE_MANY.text, *_CREATE_MANY.args(params))
                    before_commit(_written(rows))
            hand_over(self._committed, rows)
        return _written(rows)


def _written(rows: Sequence[asyncpg.Record]) -> Written:
    queued = {row["job_id"]: int(row["event_id"]) for row in rows if row["type"] == EventType.QUEUED.value}
    started = {row["job_id"] for row in rows if row["type"] == EventType.STARTED.value}
    return {job_id: (event_id, job_id in started) for job_id, event_id in queued.items()}


class _EarlyStarts:
    """The jobs of one batch that start before their commit is known: those whose lane is ``first`` before the
    statement runs, the other ``early`` ones once it said they were written as started (see the module's
    notes)."""

    def __init__(self, batch: list[Pending], offers: list[HandoffLane | None], handoff: Handoff | None) -> None:
        self._batch = batch
        self._offers = offers
        self._handoff = handoff
        self._committed: dict[uuid.UUID, asyncio.Future[bool]] = {}
        self._sent: dict[uuid.UUID, asyncio.Future[None]] = {}

    def __contains__(self, job: object) -> bool:
        """Whether ``job`` (a NewJob) was started early."""
        return isinstance(job, NewJob) and job.id in self._committed

    def _deliver(self, job: NewJob, lane: HandoffLane) -> None:
        if self._handoff is not None:
            loop = asyncio.get_running_loop()
            self._committed[job.id] = loop.create_future()
            self._sent[job.id] = loop.create_future()
            self._handoff.deliver(_claimed(job, lane), self._committed[job.id], self._sent[job.id])

    def start_first(self) -> bool:
        """Start the jobs that go first, before the statement that writes them runs; whether there were any."""
        for (job, _), lane in zip(self._batch, self._offers, strict=True):
            if lane is not None and lane.early and lane.first:
                self._deliver(job, lane)
        return bool(self._committed)

    def all_went_first(self) -> bool:
        """Whether every job of the batch started before the statement (a lone request, the usual case)."""
        return len(self._committed) == len(self._batch)

    async def sent(self, timeout_s: float) -> None:
        """Wait until the runs started so far have sent their work off, ``timeout_s`` at most."""
        waiting = [sent for sent in self._sent.values() if not sent.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout_s)

    def hook(self) -> Callable[[Written], None] | None:
        """What the write calls once its statement ran; None when no other job of the batch may start early
        (the statement then commits on its own, without BEGIN and COMMIT round trips)."""
        if not any(lane is not None and lane.early and not lane.first for lane in self._offers):
            return None
        return self._start

    def _start(self, written: Written) -> None:
        for (job, _), lane in zip(self._batch, self._offers, strict=True):
            if lane is not None and lane.early and not lane.first and written.get(job.id, (0, False))[1]:
                self._deliver(job, lane)

    def confirm(self, written: Written) -> None:
        """The commit went through: the early runs of jobs written as started may write; one that was not
        written (its idempotency key was taken first) stops."""
        for job_id, committed in self._committed.items():
            committed.set_result(written.get(job_id, (0, False))[1])

    def abandon(self) -> None:
        """The write was cancelled: the early runs stop, and their requests are cancelled."""
        for job, future in self._batch:
            committed = self._committed.get(job.id)
            if committed is not None and not committed.done():
                committed.set_result(False)
                future.cancel()

    def withdraw(self, exc: Exception) -> list[Pending]:
        """The commit failed: the early runs stop and their requests fail with ``exc``; the rest of the batch."""
        rest = []
        for job, future in self._batch:
            committed = self._committed.get(job.id)
            if committed is None:
                rest.append((job, future))
                continue
            committed.set_result(False)
            if not future.done():
                future.set_exception(exc)
        return rest


def _idempotency_params(jobs: Sequence[NewJob]) -> dict[str, list[Any]]:
    claims = [j.idempotency for j in jobs]
    return {
        "idem_keys": [c.key if c else None for c in claims],
        "idem_sha256s": [c.request_sha256 if c else None for c in claims],
        "idem_statuses": [c.status if c else None for c in claims],
        "idem_responses": [json.dumps(dict(c.response)) if c else None for c in claims],
        "idem_locations": [c.location if c else None for c in claims],
    }


def _next_batch(pending: list[Pending]) -> tuple[list[Pending], list[Pending]]:
    """Up to ``MAX_BATCH`` jobs, at most one per idempotency key (a second one waits for the next batch: one
    statement cannot write one key twice, and the second must see the first's answer)."""
    batch: list[Pending] = []
    rest: list[Pending] = []
    keys: set[tuple[uuid.UUID, str]] = set()
    for entry in pending:
        claim = entry[0].idempotency
        key = (entry[0].owner_id, claim.key) if claim is not None else None
        if len(batch) >= MAX_BATCH or (key is not None and key in keys):
            rest.append(entry)
            continue
        if key is not None:
            keys.add(key)
        batch.append(entry)
    return batch, rest


def _settle(future: asyncio.Future[int], written: tuple[int, bool] | None) -> None:
    if future.done():
        return
    if written is None:
        future.set_exception(IdempotencyKeyTaken())
    else:
        future.set_result(written[0])


def _claimed(job: NewJob, lane: HandoffLane) -> ClaimedJob:
    return ClaimedJob(
        id=job.id,
        owner_id=job.owner_id,
        kind=job.kind,
        payload=job.payload,
        attempts=1,
        max_attempts=job.max_attempts,
        backend=None,
        lane=lane.name,
        affinity_key=job.affinity_key,
    )
