"""How job kinds plug into the worker, and the ``noop`` kind used by tests and benchmarks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.events.types import EventType
from orchestrator.jobs.outcome import JobOutcome
from orchestrator.jobs.records import ClaimedJob
from orchestrator.jobs.store import JobLost, JobStore
from orchestrator.logs import bind


class JobFailed(Exception):
    """A job kind's way to fail a job with a class the client can act on.

    ``retryable`` failures are retried (``job.retrying``) until the job's attempts run out.
    """

    def __init__(self, error_class: str, message: str, *, retryable: bool = False, **details: Any) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.retryable = retryable
        self.details = details

    def as_error(self) -> dict[str, Any]:
        """The ``error`` object of ``job.failed`` and of the job resource."""
        return {"class": self.error_class, "message": self.message, "retryable": self.retryable, **self.details}


def progress_data(stage: str, step: int, total: int, **extra: Any) -> dict[str, Any]:
    """The data of a ``job.progress`` event: stage, step, total, percent, and the extras that are not None."""
    percent = round(100.0 * step / total, 2) if total > 0 else None
    data = {"stage": stage, "step": step, "total": total, "percent": percent}
    data.update({k: v for k, v in extra.items() if v is not None})
    return data


class JobContext:
    """What a running job may do besides computing: report progress and events, name its backend, and give its
    lane back early (a backend can take the next prompt while this job still collects its outputs).

    A job started while its acceptance was being committed (``committed``, see
    :mod:`orchestrator.jobs.group_commit`) writes nothing before that commit is known: each write waits for
    it, and raises :class:`~orchestrator.jobs.store.JobLost` when it failed (the worker stops the job then).
    Such a job's kind calls :meth:`work_sent` once its work went to its engine: the acceptance statement of
    a job that starts before it waits for that (``sent``), a short while at most.
    """

    def __init__(
        self,
        store: JobStore,
        worker_id: str,
        job: ClaimedJob,
        release: Callable[[float | None], None] | None = None,
        *,
        committed: asyncio.Future[bool] | None = None,
        sent: asyncio.Future[None] | None = None,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._release = release
        self._committed = committed
        self._sent = sent
        self.job = job

    def work_sent(self) -> None:
        """The job's work went to its engine (its prompt is queued on ComfyUI): an acceptance still waiting
        to be written need not wait for this run any longer."""
        if self._sent is not None and not self._sent.done():
            self._sent.set_result(None)

    async def on_record(self) -> bool:
        """Whether the job's acceptance is committed (at once, unless it is still being committed: then after).
        A run that asks has nothing more to send first."""
        self.work_sent()
        return self._committed is None or await asyncio.shield(self._committed)

    async def _writable(self) -> None:
        if not await self.on_record():
            raise JobLost(str(self.job.id))

    def release_lane(self, run_s: float | None = None) -> None:
        """The engine is done with this job (``run_s``: how long it ran there, for the scheduler's estimates)."""
        if self._release is not None:
            release, self._release = self._release, None
            release(run_s)

    async def progress(self, stage: str, step: int, total: int, **extra: Any) -> None:
        """Write a ``job.progress`` event (and the job's latest progress) in one transaction."""
        await self.record_progress([progress_data(stage, step, total, **extra)])

    async def record_progress(self, ticks: Sequence[Mapping[str, Any]]) -> None:
        """Write several ``job.progress`` events (:func:`progress_data`) in one transaction, in this order; the
        job's latest progress becomes the last one."""
        await self._writable()
        await self._store.record_many(self.job.id, self._worker_id, [(EventType.PROGRESS, tick) for tick in ticks])

    async def emit(self, event_type: EventType, data: Mapping[str, Any]) -> None:
        """Write another event of the running job (``job.artifact``, ``job.preview``)."""
        await self._writable()
        await self._store.record(self.job.id, self._worker_id, event_type, data)

    async def set_backend(self, backend: str) -> None:
        """Record which engine backend runs this job (and name it on the job's log lines from now on)."""
        await self._writable()
        await self._store.set_backend(self.job.id, self._worker_id, backend)
        bind(backend=backend)


class JobKind(Protocol):
    """A kind of job. ``run`` returns the job's result (or a :class:`JobOutcome`); it raises JobFailed to fail it.

    Cancellation arrives as ``asyncio.CancelledError``: clean up (stop the engine's work) and
    re-raise; the worker records the outcome.

    A kind with a true ``starts_before_commit`` attribute may be started while its job's acceptance is still
    being committed (the job handed to this process's idle worker; see :mod:`orchestrator.jobs.group_commit`):
    only kinds whose work before their first write can be cancelled without a trace should say so.
    """

    name: str

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any] | JobOutcome:
        """Do the work of one job."""
        ...


@dataclass(frozen=True)
class LaneState:
    """One lane of a :class:`LaneSource`: its name (unique in the process) and how many jobs it takes at once."""

    name: str
    capacity: int


@runtime_checkable
class LaneSource(Protocol):
    """A kind whose jobs run on lanes it manages (a ComfyUI backend each): the worker dispatches its jobs to a
    lane with room, choosing job and lane together (see :mod:`orchestrator.jobs.scheduling`)."""

    name: str

    def lanes(self) -> Sequence[LaneState]:
        """The lanes that can take jobs now (ready backends); capacity 0 for none."""
        ...

    def on_lanes_changed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever a lane may have become usable (a backend became ready)."""
        ...


class NoopPayload(BaseModel):
    """A job that only reports progress: for checking the pipeline and for benchmarks."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(3, ge=0, le=10_000, description="How many progress events to emit.")
    step_ms: float = Field(0.0, ge=0, le=60_000, description="Simulated work per step, in milliseconds.")
    fail_at_step: int | None = Field(None, ge=1, le=10_000, description="Fail (not retryable) when reaching this step.")


class NoopKind:
    """Emits ``steps`` progress events, ``step_ms`` apart, then succeeds."""

    name = "noop"
    #: It touches nothing outside its job's rows, so it may start while its acceptance is committed.
    starts_before_commit = True

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any]:
        """Count through the steps."""
        ctx.work_sent()  # it sends nothing anywhere: its acceptance need not wait for it
        payload = NoopPayload.model_validate(job.payload)
        for step in range(1, payload.steps + 1):
            if payload.step_ms:
                await asyncio.sleep(payload.step_ms / 1000)  # simulated work, not synchronisation
            if payload.fail_at_step == step:
                raise JobFailed("noop_failure", f"asked to fail at step {step}")
            await ctx.progress("noop", step, payload.steps)
        return {"steps": payload.steps}
