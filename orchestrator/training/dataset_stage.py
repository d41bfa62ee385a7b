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
from orchestrator.training.training_schemas import TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.dataset import (
    Box,
    CaptionError,
    CaptionTemplate,
    DatasetError,
    DatasetManifest,
    DatasetPhoto,
    PrepareOptions,
    SubjectKind,
    prepare_dataset,
)
from trainer.dataset.manifest import MANIFEST_NAME

DATASET_DIR = "dataset"
PREPARE_WORKERS = 2


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
    """Prepare (or reuse) the job's dataset; progress is reported as stage ``dataset``."""
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
    template = payload.captions.template if payload.captions else None
    options = PrepareOptions(
        resolution=resolution,
        class_word=subject.class_word,
        template=CaptionTemplate(template) if template else None,
        limits=services.limits,
    )
    try:
        manifest = await asyncio.to_thread(
            prepare_dataset,
            root,
            loaded,
            trigger=subject.trigger_word,
            kind=SubjectKind(subject.kind),
            options=options,
            user_captions=_captions(payload, photos),
            detector=services.detector,
            workers=PREPARE_WORKERS,
        )
    except (DatasetError, CaptionError) as exc:
        raise JobFailed("bad_dataset", str(exc), retryable=False) from exc
    digest = canonical_sha256(manifest.to_dict())
    await update_run(engine, run.job_id, dataset_manifest=manifest.to_dict(), manifest_sha256=digest)
    await ctx.progress("dataset", len(photos), len(photos), images=len(loaded))
    return PreparedDataset(root, manifest, digest)
