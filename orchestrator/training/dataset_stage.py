"""The dataset stage of a training job: accepted photos from storage -> sd-scripts' folder layout.

The manifest (files, hashes, captions, crops) and its SHA-256 (canonical JSON) are kept in the job's
``training_runs`` row. A retry reuses the dataset its first attempt prepared when the manifest on disk
still has the recorded hash; a resumed run trains on the dataset of the run it continues.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Photo, Subject, TrainingRun
from orchestrator.jobs.kinds import JobContext, JobFailed
from orchestrator.storage import Storage
from orchestrator.training.hashing import canonical_sha256
from orchestrator.training.run_queries import update_run
from orchestrator.training.training_schemas import CaptionOptions, TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.dataset import (
    Box,
    Captioner,
    CaptionError,
    CaptionMode,
    CaptionTemplate,
    DatasetError,
    DatasetManifest,
    DatasetPhoto,
    PrepareOptions,
    ProgressCallback,
    SubjectKind,
    prepare_dataset,
)
from trainer.dataset.captioner import CaptionerError
from trainer.dataset.manifest import MANIFEST_NAME

DATASET_DIR = "dataset"
PREPARE_WORKERS = 2
PROGRESS_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset on disk, ready for sd-scripts."""

    root: Path
    manifest: DatasetManifest
    sha256: str


def load_prepared(run: TrainingRun) -> PreparedDataset | None:
    """The dataset a run prepared, if it is still on disk exactly as recorded."""
    root = Path(run.run_dir) / DATASET_DIR
    if not run.manifest_sha256 or not (root / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = DatasetManifest.from_dict(json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    digest = canonical_sha256(manifest.to_dict())
    return PreparedDataset(root, manifest, digest) if digest == run.manifest_sha256 else None


async def _photos(engine: AsyncEngine, payload: TrainingPayload) -> list[Photo]:
    stmt = select(Photo).where(Photo.id.in_(payload.photo_ids), Photo.status == "accepted").order_by(Photo.created_at)
    async with engine.connect() as conn:
        return [Photo(**row._mapping) for row in (await conn.execute(stmt)).all()]


async def _load(storage: Storage, photos: list[Photo]) -> list[DatasetPhoto]:
    loaded = []
    for photo in photos:
        try:
            data = await storage.get(photo.storage_key)
        except FileNotFoundError:
            continue  # deleted since the training was queued
        box = Box(*photo.face_box) if photo.face_box else None
        loaded.append(DatasetPhoto(str(photo.id), data, box))
    return loaded


def _captions(payload: TrainingPayload, photos: list[Photo]) -> dict[str, str]:
    captions = {str(p.id): p.caption for p in photos if p.caption}
    if payload.captions is not None:
        captions.update({str(pid): text for pid, text in payload.captions.per_photo.items()})
    known = {str(p.id) for p in photos}
    return {pid: text for pid, text in captions.items() if pid in known}


def _captioner(services: TrainingServices, mode: CaptionMode) -> Captioner | None:
    if mode is not CaptionMode.AUTO:
        return None
    if services.captioner is None:  # configured when the job was queued, not on this worker
        reason = services.captioner_problem or "no captioner is configured on this worker (ATELIER_CAPTIONER)"
        raise JobFailed("not_configured", f"captions 'auto': {reason}", retryable=False)
    return services.captioner


def progress_from_thread(ctx: JobContext, loop: asyncio.AbstractEventLoop) -> ProgressCallback:
    """A progress callback for the preparing thread: each event is written before the thread goes on, so
    events keep their order and an error writing one (the job was cancelled) stops the preparation.
    """

    def report(stage: str, done: int, total: int) -> None:
        asyncio.run_coroutine_threadsafe(ctx.progress(stage, done, total), loop).result(timeout=PROGRESS_TIMEOUT_S)

    return report


async def prepare(
    ctx: JobContext,
    engine: AsyncEngine,
    storage: Storage,
    services: TrainingServices,
    run: TrainingRun,
    subject: Subject,
    payload: TrainingPayload,
    resolution: int,
) -> PreparedDataset:
    """Prepare (or reuse) the job's dataset; progress is reported as stages ``dataset`` and ``captioning``."""
    reused = load_prepared(run)
    if reused is not None:
        return reused
    root = Path(run.run_dir) / DATASET_DIR
    await asyncio.to_thread(shutil.rmtree, root, True)
    photos = await _photos(engine, payload)
    await ctx.progress("dataset", 0, len(photos))
    loaded = await _load(storage, photos)
    if not loaded:
        raise JobFailed("bad_dataset", "none of the subject's photos is left to train on", retryable=False)
    captions = payload.captions or CaptionOptions(mode=CaptionMode.TRIGGER)  # queued before modes existed
    mode = captions.mode or CaptionMode.TRIGGER
    options = PrepareOptions(
        resolution=resolution,
        class_word=subject.class_word,
        template=CaptionTemplate(captions.template) if captions.template else None,
        limits=services.limits,
        caption_mode=mode,
        caption_batch_size=services.settings.captioner_batch_size,
    )
    captioner = _captioner(services, mode)
    try:
        manifest = await asyncio.to_thread(
            prepare_dataset,
            root,
            loaded,
            trigger=subject.trigger_word,
            kind=SubjectKind(subject.kind),
            options=options,
            user_captions=_captions(payload, photos),
            captioner=captioner,
            detector=services.detector,
            workers=PREPARE_WORKERS,
            on_progress=progress_from_thread(ctx, asyncio.get_running_loop()),
        )
    except (DatasetError, CaptionError) as exc:
        raise JobFailed("bad_dataset", str(exc), retryable=False) from exc
    except CaptionerError as exc:
        raise JobFailed("captioning_failed", str(exc), retryable=False) from exc
    digest = canonical_sha256(manifest.to_dict())
    await update_run(engine, run.job_id, dataset_manifest=manifest.to_dict(), manifest_sha256=digest)
    await ctx.progress("dataset", len(photos), len(photos), images=len(loaded))
    return PreparedDataset(root, manifest, digest)
