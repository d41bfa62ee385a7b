"""The worker: runs the jobs its dispatcher gives it, heartbeats, reaps the dead and shuts down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from orchestrator.errors import IllegalTransition, NotFound
from orchestrator.jobs.claims import JobClaims
from orchestrator.jobs.dispatcher import Dispatcher, SchedulingConfig
from orchestrator.jobs.kinds import JobContext, JobFailed, JobKind, LaneSource
from orchestrator.jobs.lanes import LaneBook
from orchestrator.jobs.outcome import JobOutcome
from orchestrator.jobs.records import ClaimedJob
from orchestrator.jobs.states import Status
from orchestrator.jobs.store import JobLost, JobStore
from orchestrator.logs import bound

log = logging.getLogger(__name__)
# kind, outcome (succeeded, failed, retrying, cancelled, interrupted, lost), seconds it ran here
DurationObserver = Callable[[str, str, float], None]


class StopReason(Enum):
    """Why the worker cancelled a running job's task."""

    CANCEL_REQUESTED = "cancel"
    SHUTDOWN = "shutdown"
    LOST = "lost"
    WITHDRAWN = "withdrawn"  # started before its acceptance was committed, and the commit failed


@dataclass
class _Running:
    job: ClaimedJob
    task: asyncio.Task[None]
    stop_reason: StopReason | None = None
    #: For a job started while its acceptance was committed: whether it was (unresolved: not known yet).
    committed: asyncio.Future[bool] | None = None

    @property
    def on_record(self) -> bool:
        """Whether the job's row is known to be committed (so that a heartbeat can find it)."""
        return self.committed is None or (self.committed.done() and self.committed.result())


@dataclass(frozen=True)
class WorkerConfig:
    """The worker's knobs (from Settings)."""

    kinds: tuple[str, ...]
    concurrency: int
    heartbeat_interval_s: float
    heartbeat_timeout_s: float
    shutdown_timeout_s: float
    idle_poll_s: float
    retry_base_delay_s: float = 1.0
    scheduling: SchedulingConfig = field(default_factory=SchedulingConfig)


def new_worker_id() -> str:
    """A worker id that says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs jobs of the configured kinds, ``concurrency`` at a time; kinds that run on engine backends
    (:class:`~orchestrator.jobs.kinds.LaneSource`) also get at most as many as their backends take."""

    def __init__(
        self,
        store: JobStore,
        kinds: Mapping[str, JobKind],
        config: WorkerConfig,
        observe: DurationObserver | None = None,
        *,
        claims: JobClaims | None = None,
    ) -> None:
        self._observe: DurationObserver = observe or (lambda _kind, _outcome, _seconds: None)
        unknown = set(config.kinds) - set(kinds)
        if unknown:
            raise ValueError(f"no implementation for job kinds {sorted(unknown)}")
        self._store = store
        self._kinds = kinds
        self._config = config
        self.worker_id = new_worker_id()
        self._running: dict[uuid.UUID, _Running] = {}
        self._loops: list[asyncio.Task[None]] = []
        sources = {k: kind for k, kind in kinds.items() if k in config.kinds and isinstance(kind, LaneSource)}
        slot_kinds = frozenset(k for k in config.kinds if k not in sources)
        early = frozenset(k for k in config.kinds if getattr(kinds[k], "starts_before_commit", False))
        self.dispatcher = Dispatcher(
            claims or JobClaims(store.engine),
            LaneBook(sources, slot_kinds),
            self.worker_id,
            config.scheduling,
            room=self._room,
            start=self._start,
            idle_poll_s=config.idle_poll_s,
            early_kinds=early,
        )
        for source in sources.values():
            source.on_lanes_changed(self.dispatcher.wake)

    # -- notifications (wired to the process's LISTEN connection) --------------------------------

    def job_available(self, _payload: str = "") -> None:
        """A job was queued or requeued somewhere: look at the queue again and try to claim."""
        self.dispatcher.queue_changed()

    def cancel_requested(self, payload: str) -> None:
        """The owner asked to cancel a job; stop it if it runs here."""
        with contextlib.suppress(ValueError):
            self._stop(uuid.UUID(payload), StopReason.CANCEL_REQUESTED)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming, heartbeating and reaping."""
        self.dispatcher.start()
        self._loops = [
            asyncio.create_task(self._heartbeat_loop(), name="worker-heartbeat"),
            asyncio.create_task(self._reap_loop(), name="worker-reaper"),
        ]

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period, then requeue the rest."""
        await self.dispatcher.stop()
        tasks = [r.task for r in self._running.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._config.shutdown_timeout_s)
            for job_id in [jid for jid, r in self._running.items() if r.task in pending]:
                self._stop(job_id, StopReason.SHUTDOWN)
            if pending:
                await asyncio.wait(pending)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    @property
    def running_job_ids(self) -> list[uuid.UUID]:
        """Ids of the jobs running in this worker."""
        return list(self._running)

    def _room(self) -> int:
        return self._config.concurrency - len(self._running) - self.dispatcher.reserved

    def _start(
        self, job: ClaimedJob, committed: asyncio.Future[bool] | None, sent: asyncio.Future[None] | None = None
    ) -> None:
        task = asyncio.create_task(self._run(job, committed, sent), name=f"job-{job.id}")
        self._running[job.id] = _Running(job, task, committed=committed)
        if committed is not None:
            committed.add_done_callback(lambda done: self._withdraw_unless(done.result(), job.id))

    def _withdraw_unless(self, committed: bool, job_id: uuid.UUID) -> None:
        if not committed:
            self._stop(job_id, StopReason.WITHDRAWN)

    # -- running ------------------------------------------------------------------------------------

    async def _run(
        self, job: ClaimedJob, committed: asyncio.Future[bool] | None, sent: asyncio.Future[None] | None
    ) -> None:
        started = time.monotonic()
        fields = {"job_id": job.id, "owner": job.owner_id, "kind": job.kind, "attempt": job.attempts}
        try:
            with bound(**fields, backend=job.backend):  # every line the job logs carries them
                outcome = await self._execute(job, committed, sent)
                seconds = time.monotonic() - started
                log.info("job %s %s after %.3f s", job.id, outcome, seconds, extra={"outcome": outcome})
            self._observe(job.kind, outcome, seconds)
        except Exception:
            # Recording the outcome failed (the database went away): the job stays running without a
            # heartbeat, so the reaper requeues it. Nobody awaits this task, so the error ends here.
            log.exception("job %s: its outcome could not be recorded; it will be reclaimed", job.id)
        finally:
            self._running.pop(job.id, None)
            self.dispatcher.release(job.id)

    async def _execute(
        self, job: ClaimedJob, committed: asyncio.Future[bool] | None, sent: asyncio.Future[None] | None
    ) -> str:
        """Run the job and record how it ended; that outcome (succeeded, failed, retrying, cancelled, ...)."""
        release = lambda run_s: self.dispatcher.release(job.id, run_s)  # noqa: E731
        ctx = JobContext(self._store, self.worker_id, job, release, committed=committed, sent=sent)
        try:
            result = await self._kinds[job.kind].run(job, ctx)
        except asyncio.CancelledError:
            return await self._record_stop(job)
        except JobFailed as failure:
            return await self._record_failure(job, failure) if await ctx.on_record() else "withdrawn"
        except JobLost:
            log.info("job %s was taken from this worker; dropping it", job.id)
            return "withdrawn" if not await ctx.on_record() else "lost"
        except Exception as exc:
            log.exception("job %s crashed", job.id)
            crash = JobFailed("internal", f"{type(exc).__name__}: {exc}", retryable=True)
            return await self._record_failure(job, crash) if await ctx.on_record() else "withdrawn"
        if not await ctx.on_record():
            return "withdrawn"
        outcome = result if isinstance(result, JobOutcome) else JobOutcome(result=result)
        try:
            await self._store.succeed(
                job.id,
                self.worker_id,
                outcome.result,
                artifacts=outcome.artifacts,
                rows=outcome.rows,
            )
        except (IllegalTransition, NotFound) as exc:
            log.info("job %s: %s", job.id, exc.detail)
            return "lost"
        return "succeeded"

    async def _record_stop(self, job: ClaimedJob) -> str:
        running = self._running.get(job.id)
        reason = running.stop_reason if running else StopReason.SHUTDOWN
        if running is not None and running.committed is not None and not await asyncio.shield(running.committed):
            return "withdrawn"  # its acceptance was never committed: there is nothing to record
        if reason is StopReason.CANCEL_REQUESTED:
            await self._finish(job, Status.CANCELLED, data={"reason": "cancelled by request"})
            return "cancelled"
        if reason is StopReason.SHUTDOWN:
            await self._finish(job, Status.QUEUED, data={"attempt": job.attempts + 1, "reason": "worker shut down"})
            return "interrupted"
        return "lost"

    async def _record_failure(self, job: ClaimedJob, failure: JobFailed) -> str:
        error = failure.as_error()
        if failure.retryable and job.attempts < job.max_attempts:
            delay = self._config.retry_base_delay_s * 2 ** (job.attempts - 1) * (0.5 + random.random())
            data = {"attempt": job.attempts + 1, "reason": failure.message, "error": error}
            await self._finish(job, Status.QUEUED, data=data, delay_s=delay)
            return "retrying"
        await self._finish(job, Status.FAILED, error=error, data={"error": error})
        return "failed"

    async def _finish(self, job: ClaimedJob, target: Status, **kwargs: Any) -> None:
        try:
            await self._store.transition(job.id, target, worker_id=self.worker_id, **kwargs)
        except (IllegalTransition, NotFound) as exc:
            # Someone else decided first (a cancel raced the finish, the reaper took it): theirs stands.
            log.info("job %s: %s", job.id, exc.detail)

    def _stop(self, job_id: uuid.UUID, reason: StopReason) -> None:
        running = self._running.get(job_id)
        if running is not None and running.stop_reason is None:
            running.stop_reason = reason
            running.task.cancel()

    # -- heartbeats and the reaper -------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s)  # a period, not synchronisation
            ids = [job_id for job_id, running in self._running.items() if running.on_record]
            try:
                alive = await self._store.heartbeat(self.worker_id, ids)
            except Exception:
                log.exception("heartbeat failed; retrying next period")
                continue
            for job_id in ids:
                if job_id not in alive and job_id in self._running:
                    self._stop(job_id, StopReason.LOST)
                elif alive.get(job_id):
                    self._stop(job_id, StopReason.CANCEL_REQUESTED)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.heartbeat_interval_s * (0.5 + random.random()))
            try:
                for reaped in await self._store.reap(self._config.heartbeat_timeout_s):
                    log.warning("reclaimed job %s from a lost worker: now %s", reaped.job_id, reaped.status)
            except Exception:
                log.exception("reaper failed; retrying next period")
