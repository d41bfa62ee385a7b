"""The ``erasure`` job kind: everything of a subject goes, except an audit record of ids and counts.

Steps (progress stage ``erasure``, 3 steps), each safe to repeat on a retry:

1. stop the subject's trainings: queued ones are cancelled, running ones are asked to stop, and the job
   waits until none is running (a training stops its process group before it ends);
2. remove files: the subject's photos and pending uploads in storage, each training's stored samples and
   checkpoints and its run directory (dataset, run files, sd-scripts output), each LoRA's stored versions
   and its files in the models store;
3. remove rows in one transaction: the training jobs (with their events and runs) and the subject (with
   its photos, LoRAs and versions); the ``erasures`` row gets its completion time and the counts.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Erasure, Job, Lora, LoraVersion, Photo, Subject, TrainingRun
from orchestrator.errors import IllegalTransition, NotFound
from orchestrator.jobs.kinds import JobContext, JobFailed
from orchestrator.jobs.records import ClaimedJob
from orchestrator.jobs.store import JobStore
from orchestrator.loras.store import remove_lora_files, version_from_row
from orchestrator.storage import Storage
from orchestrator.training.photo_intake import subject_prefix
from orchestrator.training.training_services import TrainingServices

KIND = "erasure"
STOP_POLL_S = 0.25

_SUBJECT_TRAININGS = text(
    "SELECT id, status FROM jobs WHERE kind = 'training' AND owner_id = :owner AND payload->>'subject_id' = :subject"
)


@dataclass
class ErasurePlan:
    """What belongs to the subject."""

    training_jobs: list[uuid.UUID] = field(default_factory=list)
    run_dirs: set[Path] = field(default_factory=set)
    loras: dict[uuid.UUID, list[LoraVersion]] = field(default_factory=dict)
    photos: int = 0


class ErasureKind:
    """Erases subjects (see the module docstring)."""

    name = KIND

    def __init__(self, engine: AsyncEngine, storage: Storage, store: JobStore, services: TrainingServices) -> None:
        self._engine = engine
        self._storage = storage
        self._store = store
        self._services = services

    async def run(self, job: ClaimedJob, ctx: JobContext) -> Mapping[str, Any]:
        """Erase the subject named in the payload."""
        subject_id = uuid.UUID(job.payload["subject_id"])
        await ctx.progress("erasure", 0, 3)
        stopped = await self._stop_trainings(job.owner_id, subject_id)
        await ctx.progress("erasure", 1, 3)
        plan = await self._plan(job.owner_id, subject_id)
        removed: dict[str, Any] = {"trainings_stopped": stopped, **await self._remove_files(subject_id, plan)}
        await ctx.progress("erasure", 2, 3)
        removed.update(
            photos=plan.photos,
            training_jobs=len(plan.training_jobs),
            loras=len(plan.loras),
            lora_versions=sum(len(v) for v in plan.loras.values()),
        )
        await self._remove_rows(job, subject_id, plan, removed)
        await ctx.progress("erasure", 3, 3)
        return {"subject_id": str(subject_id), "removed": removed}

    async def _trainings(self, owner_id: uuid.UUID, subject_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_SUBJECT_TRAININGS, {"owner": owner_id, "subject": str(subject_id)})).all()
        return [(row.id, row.status) for row in rows]

    async def _stop_trainings(self, owner_id: uuid.UUID, subject_id: uuid.UUID) -> int:
        active = [(jid, s) for jid, s in await self._trainings(owner_id, subject_id) if s in ("queued", "running")]
        for job_id, _ in active:
            try:
                await self._store.request_cancel(job_id, owner_id)
            except (IllegalTransition, NotFound):
                continue  # it ended meanwhile
        settings = self._services.settings
        limit = settings.training_sigint_grace_s + settings.training_sigterm_grace_s + 2 * settings.heartbeat_timeout_s
        deadline = time.monotonic() + limit + 30
        while any(s in ("queued", "running") for _, s in await self._trainings(owner_id, subject_id)):
            if time.monotonic() > deadline:
                raise JobFailed("trainings_still_running", "the subject's trainings did not stop", retryable=True)
            await asyncio.sleep(STOP_POLL_S)  # the stopping trainings write their own terminal events
        return len(active)

    async def _plan(self, owner_id: uuid.UUID, subject_id: uuid.UUID) -> ErasurePlan:
        plan = ErasurePlan(training_jobs=[jid for jid, _ in await self._trainings(owner_id, subject_id)])
        plan.run_dirs = {self._services.run_dir(jid) for jid in plan.training_jobs}
        async with self._engine.connect() as conn:
            subject = (
                await conn.execute(select(Subject.id).where(Subject.id == subject_id, Subject.owner_id == owner_id))
            ).first()
            if subject is None:
                return plan  # rows already gone (a retry after step 3): only files may be left
            runs = (await conn.execute(select(TrainingRun.run_dir).where(TrainingRun.subject_id == subject_id))).all()
            plan.run_dirs.update(Path(r.run_dir) for r in runs)
            plan.photos = int(await conn.scalar(select(func.count()).where(Photo.subject_id == subject_id)) or 0)
            lora_ids = (await conn.execute(select(Lora.id).where(Lora.subject_id == subject_id))).scalars().all()
            plan.loras = {lora_id: [] for lora_id in lora_ids}
            rows = (await conn.execute(select(LoraVersion).where(LoraVersion.lora_id.in_(lora_ids)))).all()
            for row in rows:
                version = version_from_row(row)
                plan.loras[version.lora_id].append(version)
        return plan

    async def _remove_files(self, subject_id: uuid.UUID, plan: ErasurePlan) -> dict[str, int]:
        storage, loras_dir = self._storage, self._services.loras_dir
        objects = await storage.delete_prefix(subject_prefix(subject_id))
        for job_id in plan.training_jobs:
            objects += await storage.delete_prefix(f"trainings/{job_id}")
        lora_files = 0
        for lora_id, versions in plan.loras.items():
            lora_files += await remove_lora_files(storage, loras_dir, lora_id, versions)
        await asyncio.to_thread(shutil.rmtree, loras_dir / str(subject_id), True)
        run_dirs = 0
        for run_dir in plan.run_dirs:
            if run_dir.exists():
                await asyncio.to_thread(shutil.rmtree, run_dir, True)
                run_dirs += 1
        return {"storage_objects": objects, "lora_files": lora_files, "run_dirs": run_dirs}

    async def _remove_rows(
        self, job: ClaimedJob, subject_id: uuid.UUID, plan: ErasurePlan, removed: dict[str, Any]
    ) -> None:
        async with self._engine.begin() as conn:
            if plan.training_jobs:
                await conn.execute(delete(Job).where(Job.id.in_(plan.training_jobs)))
            await conn.execute(delete(Subject).where(Subject.id == subject_id, Subject.owner_id == job.owner_id))
            await conn.execute(
                update(Erasure)
                .where(Erasure.subject_id == subject_id, Erasure.completed_at.is_(None))
                .values(completed_at=func.now(), removed=removed, job_id=job.id)
            )
