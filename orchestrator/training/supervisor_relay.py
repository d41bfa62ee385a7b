"""Supervisor events of a running training -> job events, run-row updates and stored artifacts.

=================  ============================================================================
supervisor event   what it becomes
=================  ============================================================================
Started            ``training_runs`` pid, pgid, host; the job's backend ``sd-scripts@<host>``
Progress           ``job.progress`` {stage "train", step, total, percent, loss, avg_loss, lr, epoch,
                   it_per_s, eta_s}
SampleSaved        the image stored under ``trainings/<job>/samples/``; ``job.artifact`` {kind "sample",
                   url, sha256, step, prompt, name}
CheckpointSaved    the LoRA stored under ``trainings/<job>/checkpoints/``; ``job.artifact`` {kind
                   "checkpoint", url, sha256, step, name}
StateSaved         ``training_runs`` last_step and state_dir (what ``resume`` continues from)
ModelSaved         nothing here: the final file is published once the run has ended well
=================  ============================================================================
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.events.types import EventType
from orchestrator.jobs.kinds import JobContext
from orchestrator.jobs.store import JobLost
from orchestrator.storage import Storage
from orchestrator.training.orphans import HOST
from orchestrator.training.run_queries import update_run
from trainer.supervisor_events import CheckpointSaved, Progress, SampleSaved, Started, StateSaved, SupervisorEvent

log = logging.getLogger(__name__)

ARTIFACT_KINDS = {"samples": "image/png", "checkpoints": "application/octet-stream"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def artifact_name(path: Path) -> str:
    """A file name usable in a storage key and a URL."""
    return _SAFE_NAME.sub("-", path.name).lstrip(".-") or "file"


def artifact_key(job_id: uuid.UUID, folder: str, name: str) -> str:
    """Where a training's sample or checkpoint is stored."""
    return f"trainings/{job_id}/{folder}/{name}"


def artifact_url(job_id: uuid.UUID, folder: str, name: str) -> str:
    """The API URL that serves a training's sample or checkpoint."""
    return f"/v1/trainings/{job_id}/artifacts/{folder}/{name}"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class SupervisorEventRelay:
    """The supervisor's ``on_event`` callback for one training job."""

    def __init__(self, ctx: JobContext, engine: AsyncEngine, storage: Storage) -> None:
        self._ctx = ctx
        self._engine = engine
        self._storage = storage
        self._job_id = ctx.job.id

    async def __call__(self, event: SupervisorEvent) -> None:
        """Handle one event; a job that is no longer ours (cancelled, reclaimed) is not written to."""
        try:
            await self._handle(event)
        except JobLost:
            log.debug("training %s: event %s after the job left this worker", self._job_id, type(event).__name__)

    async def _handle(self, event: SupervisorEvent) -> None:
        if isinstance(event, Progress):
            await self._ctx.progress(
                "train",
                event.step,
                event.total or 0,
                loss=_rounded(event.loss, 6),
                avg_loss=_rounded(event.avg_loss, 6),
                lr=event.lr,
                epoch=event.epoch,
                it_per_s=_rounded(event.it_per_s, 4),
                eta_s=_rounded(event.eta_s, 1),
            )
        elif isinstance(event, Started):
            await update_run(self._engine, self._job_id, pid=event.pid, pgid=event.pgid, host=HOST)
            await self._ctx.set_backend(f"sd-scripts@{HOST}")
        elif isinstance(event, SampleSaved):
            await self._artifact("sample", "samples", event.path, step=event.step, prompt=event.prompt)
        elif isinstance(event, CheckpointSaved):
            await self._artifact("checkpoint", "checkpoints", event.path, step=event.step)
        elif isinstance(event, StateSaved):
            await update_run(self._engine, self._job_id, last_step=event.step, state_dir=str(event.path))

    async def _artifact(self, kind: str, folder: str, path: Path, **extra: object) -> None:
        name = artifact_name(path)
        stored = await self._storage.put_file(artifact_key(self._job_id, folder, name), path, ARTIFACT_KINDS[folder])
        data: dict[str, object] = {
            "kind": kind,
            "url": artifact_url(self._job_id, folder, name),
            "sha256": stored.sha256,
            "name": name,
        }
        data.update(extra)
        await self._ctx.emit(EventType.ARTIFACT, data)
