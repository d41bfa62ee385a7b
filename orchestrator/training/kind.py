"""The ``training`` job kind: dataset, run files, the supervised sd-scripts process, publishing.

One attempt, in order:

1. the subject must still exist and not be under erasure (else ``subject_gone``);
2. the job's ``training_runs`` row is created (or found: a retry), and a process group an earlier attempt
   left running on this host is ended before anything else (:mod:`orchestrator.training.orphans`);
3. where to start from: this job's own latest saved state (a retry), else, for a resume, the state of
   the run it continues (``no_saved_state`` when there is none), else step 0;
4. the dataset (stage ``dataset``), the run files and the plan (:mod:`orchestrator.training.planning`);
5. the supervised run; its events are relayed (:mod:`orchestrator.training.supervisor_relay`); the base model's
   SHA-256 is computed meanwhile (cached across runs);
6. the outcome: a failure class becomes ``JobFailed`` (retryable where a retry may help; exit 0 without a
   LoRA is a failure); success publishes the LoRA (:mod:`orchestrator.training.publishing`).

Cancellation (``CancelledError``) stops the process group (SIGINT -> SIGTERM -> SIGKILL), waits until none
of it is left, and re-raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Subject, TrainingRun
from orchestrator.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from orchestrator.jobs.kinds import JobContext, JobFailed
from orchestrator.jobs.records import ClaimedJob
from orchestrator.storage import Storage
from orchestrator.training.dataset_stage import PreparedDataset, load_prepared, prepare
from orchestrator.training.orphans import HOST, end_orphan
from orchestrator.training.planning import plan_training
from orchestrator.training.publishing import PublishInputs, publish
from orchestrator.training.run_queries import ensure_run, get_run, update_run
from orchestrator.training.subject_queries import writable_subject
from orchestrator.training.supervisor_relay import SupervisorEventRelay
from orchestrator.training.training_schemas import TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.config import LaunchSpec, RunLayout, TrainingPlan, write_run_files
from trainer.supervisor import LaunchError, TrainingProcess
from trainer.supervisor_events import Outcome, OutcomeStatus
from trainer.supervisor_resume import SavedState, find_latest_state, resume_spec

log = logging.getLogger(__name__)

KIND = "training"


@dataclass(frozen=True)
class StartingPoint:
    """The state an attempt continues from (None: step 0) and the dataset it trains on (None: prepare one)."""

    state: SavedState | None
    dataset: PreparedDataset | None


def output_dir(run_dir: Path) -> Path:
    """sd-scripts' output folder inside a run directory."""
    return RunLayout(run_dir).output_dir


async def wait_through_cancel(process: TrainingProcess) -> Outcome:
    """The outcome of a run being stopped, even if this task is cancelled again while it stops."""
    while True:
        try:
            return await process.wait()
        except asyncio.CancelledError:
            continue


def failure_of(outcome: Outcome) -> JobFailed:
    """The job failure for a run that did not succeed."""
    failure = outcome.failure
    error_class = failure.failure_class.value if failure else "crashed"
    message = failure.message if failure else f"the run ended as {outcome.status.value}"
    return JobFailed(
        error_class,
        message,
        retryable=failure.retryable if failure else False,
        returncode=outcome.returncode,
        last_step=outcome.last_step,
        stderr_tail=list(outcome.stderr_tail[-10:]),
    )


class TrainingKind:
    """Runs training jobs on this host's sd-scripts."""

    name = KIND

    def __init__(self, engine: AsyncEngine, storage: Storage, services: TrainingServices) -> None:
        self._engine = engine
        self._storage = storage
        self._services = services

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any]:
        """One attempt of a training job (see the module docstring)."""
        payload = TrainingPayload.model_validate(job.payload)
        subject = await self._subject(job, payload)
        run_dir = self._services.run_dir(job.id)
        run = await ensure_run(self._engine, job.id, subject.id, str(run_dir), HOST)
        await end_orphan(self._engine, run, self._services.supervisor_options())
        start = await self._starting_point(run, payload)
        plan = self._plan(payload, subject)
        dataset = start.dataset or await prepare(
            ctx, self._engine, self._storage, self._services, run, subject, payload, plan.resolution
        )
        spec = await asyncio.to_thread(self._write_run_files, plan, dataset, run_dir, payload.lora_name)
        if start.state is not None:  # --resume <state> --skip_until_initial_step on the command line
            spec = resume_spec(spec, start.state)
        base_hash = asyncio.ensure_future(asyncio.to_thread(self._services.hashes.sha256, plan.request.base_model))
        try:
            outcome = await self._train(ctx, spec)
        except BaseException:
            base_hash.cancel()
            raise
        if outcome.status is not OutcomeStatus.SUCCEEDED or outcome.model_path is None:
            base_hash.cancel()
            raise failure_of(outcome)
        inputs = PublishInputs(
            model_path=outcome.model_path,
            subject=subject,
            payload=payload,
            plan=plan,
            manifest_sha256=dataset.sha256,
            base_model_sha256=await base_hash,
            resumed_from=str(payload.resume_from) if payload.resume_from else None,
        )
        result = await publish(ctx, self._engine, self._storage, self._services, inputs)
        return {**result, "steps": outcome.last_step, "duration_s": round(outcome.duration_s, 2)}

    async def _subject(self, job: ClaimedJob, payload: TrainingPayload) -> Subject:
        try:
            async with self._engine.connect() as conn:
                return await writable_subject(conn, job.owner_id, payload.subject_id)
        except NotFound as exc:
            raise JobFailed("subject_gone", "the subject no longer exists", retryable=False) from exc
        except Conflict as exc:
            raise JobFailed("subject_gone", "the subject is being erased", retryable=False) from exc

    async def _starting_point(self, run: TrainingRun, payload: TrainingPayload) -> StartingPoint:
        own_state = find_latest_state(output_dir(Path(run.run_dir)), payload.lora_name)
        own_dataset = load_prepared(run)
        if payload.resume_from is None:
            return StartingPoint(own_state, own_dataset)
        async with self._engine.connect() as conn:
            earlier = await get_run(conn, payload.resume_from)
        earlier_dataset = load_prepared(earlier) if earlier is not None else None
        earlier_state = None
        if earlier is not None:
            earlier_state = find_latest_state(output_dir(Path(earlier.run_dir)), payload.lora_name)
        state = own_state or earlier_state
        if state is None or earlier_dataset is None:
            raise JobFailed("no_saved_state", f"training {payload.resume_from} left no state to resume from")
        if own_dataset is None:
            await update_run(
                self._engine,
                run.job_id,
                dataset_manifest=earlier_dataset.manifest.to_dict(),
                manifest_sha256=earlier_dataset.sha256,
            )
        return StartingPoint(state, own_dataset or earlier_dataset)

    def _plan(self, payload: TrainingPayload, subject: Subject) -> TrainingPlan:
        try:
            return plan_training(payload, self._services, subject.trigger_word)
        except ValidationFailed as exc:
            fields = {e["field"] for e in exc.errors}
            error_class = "missing_model" if fields & {"base_model", "resume"} else "bad_arguments"
            raise JobFailed(error_class, exc.detail, retryable=False) from exc
        except ServiceUnavailable as exc:
            raise JobFailed("not_configured", exc.detail, retryable=False) from exc

    def _write_run_files(self, plan: TrainingPlan, dataset: PreparedDataset, run_dir: Path, name: str) -> LaunchSpec:
        install = self._services.install
        if install is None:
            raise JobFailed("not_configured", "sd-scripts is not configured on this worker")
        layout = RunLayout(run_dir, output_name=name)
        layout.final_model.unlink(missing_ok=True)  # an earlier attempt's file must not pass for this one's
        return write_run_files(plan, dataset.manifest, dataset.root, install, layout)

    async def _train(self, ctx: JobContext, spec: LaunchSpec) -> Outcome:
        relay = SupervisorEventRelay(ctx, self._engine, self._storage)
        process = TrainingProcess(spec, self._services.supervisor_options(), on_event=relay)
        try:
            await process.start()
        except LaunchError as exc:
            raise JobFailed("launch_failed", str(exc), retryable=False) from exc
        try:
            return await process.wait()
        except asyncio.CancelledError:
            await process.cancel()
            outcome = await wait_through_cancel(process)
            log.info("training %s stopped (%s, group clean: %s)", ctx.job.id, outcome.status, outcome.group_clean)
            raise
        finally:
            with contextlib.suppress(Exception):
                await update_run(self._engine, ctx.job.id, pid=None, pgid=None)
