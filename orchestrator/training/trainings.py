"""Trainings as clients see them (job, run, LoRA version produced), and resuming a stopped one."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Job, TrainingRun
from orchestrator.errors import Conflict
from orchestrator.jobs.queries import get_job
from orchestrator.jobs.states import Status
from orchestrator.jobs.views import JobOut
from orchestrator.loras.store import versions_by_training_job
from orchestrator.training.kind import KIND, output_dir
from orchestrator.training.planning import plan_training
from orchestrator.training.publishing import lora_file_url
from orchestrator.training.run_queries import runs_for
from orchestrator.training.subject_queries import writable_subject
from orchestrator.training.training_schemas import LoraVersionRef, RunInfo, TrainingOut, TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.supervisor_resume import find_latest_state


def _run_info(run: TrainingRun, lora_name: str | None) -> RunInfo:
    state = find_latest_state(output_dir(Path(run.run_dir)), lora_name) if lora_name else None
    manifest = run.dataset_manifest or {}
    return RunInfo(
        host=run.host,
        pid=run.pid,
        last_step=run.last_step,
        resumable=state is not None,
        manifest_sha256=run.manifest_sha256,
        dataset_images=len(manifest.get("entries", [])) if manifest else None,
    )


async def training_views(engine: AsyncEngine, jobs: list[Job]) -> list[TrainingOut]:
    """Each training job with its run and the LoRA version it produced (two queries for the lot)."""
    ids = [job.id for job in jobs]
    async with engine.connect() as conn:
        runs = await runs_for(conn, ids)
        produced = await versions_by_training_job(conn, ids)
    out = []
    for job in jobs:
        payload = job.payload
        name = payload.get("lora_name")
        run = runs.get(job.id)
        made = produced.get(job.id)
        lora = None
        if made is not None:
            url = lora_file_url(made.lora_id, made.version)
            lora = LoraVersionRef(
                lora_id=made.lora_id,
                name=made.name,
                version=made.version,
                comfy_name=made.comfy_name,
                sha256=made.sha256,
                file_url=url,
            )
        out.append(
            TrainingOut(
                **JobOut.of(job).model_dump(),
                subject_id=payload.get("subject_id"),
                lora_name=name,
                resumed_from=payload.get("resume_from"),
                run=_run_info(run, name) if run is not None else None,
                lora=lora,
            )
        )
    return out


async def training_view(engine: AsyncEngine, owner_id: uuid.UUID, job_id: uuid.UUID) -> TrainingOut:
    """One of the owner's trainings; NotFound for anyone else's or another kind's job."""
    job = await get_job(engine, job_id, owner_id, kind=KIND)
    return (await training_views(engine, [job]))[0]


async def resume_payload(
    engine: AsyncEngine, services: TrainingServices, owner_id: uuid.UUID, job_id: uuid.UUID
) -> TrainingPayload:
    """The payload of a new job that continues a cancelled or failed training from its latest saved state
    (same parameters and dataset; ``resume_from`` links the two). 409 when it is not stopped or saved no state.
    """
    old = await get_job(engine, job_id, owner_id, kind=KIND)
    if old.status not in (Status.CANCELLED, Status.FAILED):
        raise Conflict(f"training {old.id} is {old.status}; only cancelled or failed trainings can be resumed")
    payload = TrainingPayload.model_validate(old.payload)
    async with engine.connect() as conn:
        subject = await writable_subject(conn, owner_id, payload.subject_id)
        run = (await runs_for(conn, [old.id])).get(old.id)
    state = find_latest_state(output_dir(Path(run.run_dir)), payload.lora_name) if run is not None else None
    if state is None:
        raise Conflict(f"training {old.id} saved no state to resume from")
    plan_training(payload, services, subject.trigger_word)
    return payload.model_copy(update={"resume_from": old.id})
