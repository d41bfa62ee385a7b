"""A subject's photos: checking and storing uploads (multipart or presigned), reading and deleting them.

Presigned uploads (S3 mode): ``presign_uploads`` records each file as an ``awaiting_upload`` photo with its
own upload key and returns a PUT URL; ``complete_uploads`` reads each uploaded object, checks it exactly
like a multipart upload, stores the cleaned image under the photo's final key and removes the raw upload
(rejected uploads lose their row too). With a local store there is nothing to presign: 409.

Known limit: the storage interface has no size lookup, so completing reads the object before it can
compare its size with the limit; the size declared when presigning is checked against the limit first.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.models import Photo
from orchestrator.errors import Conflict, ValidationFailed
from orchestrator.policy import ContentPolicy
from orchestrator.storage import Storage
from orchestrator.training.photo_intake import (
    IncomingFile,
    PhotoIntake,
    existing_fingerprints,
    subject_prefix,
    take_uploads,
)
from orchestrator.training.subject_queries import (
    delete_photo_row,
    get_photo,
    get_subject,
    insert_photos,
    list_photos,
    replace_photos,
    writable_subject,
)
from orchestrator.training.subject_schemas import PhotoUploadResult, PresignedUpload, PresignFile, PresignResult
from orchestrator.training.training_services import TrainingServices

PRESIGN_EXPIRES_S = 3600
NOT_S3 = (
    "presigned uploads need S3 storage (ATELIER_STORAGE_URL=s3://...); this service keeps files on local "
    "disk: upload with multipart POST /v1/subjects/{id}/photos instead"
)


async def upload_photos(
    engine: AsyncEngine,
    storage: Storage,
    services: TrainingServices,
    owner_id: uuid.UUID,
    subject_id: uuid.UUID,
    files: AsyncIterator[IncomingFile],
    policy: ContentPolicy,
) -> PhotoUploadResult:
    """Check each file as it arrives and store the accepted ones; a verdict per file, in upload order.

    The subject is checked (the owner's, not being erased) before the first file is read. A person's photos
    are screened by the content policy: an explicit one gets ``explicit_content``, is not stored and is
    recorded in the audit log.
    """
    async with engine.connect() as conn:
        subject = await writable_subject(conn, owner_id, subject_id)
        existing = existing_fingerprints(await list_photos(conn, subject_id))
    intake = PhotoIntake(subject, storage, services.limits, services.detector, existing, policy)
    try:
        await take_uploads(intake, files)
        await intake.record_explicit(owner_id, uuid.uuid4())
        if not intake.verdicts:
            raise ValidationFailed([{"field": "body", "reason": "no files: send one file part per photo"}])
        await insert_photos(engine, intake.rows)
    except BaseException:
        await intake.discard()
        raise
    return intake.result()


async def subject_photos(engine: AsyncEngine, owner_id: uuid.UUID, subject_id: uuid.UUID) -> list[Photo]:
    """Accepted photos and presigned uploads still awaiting completion, oldest first."""
    async with engine.connect() as conn:
        await get_subject(conn, owner_id, subject_id)
        return await list_photos(conn, subject_id, status=None)


async def subject_photo(engine: AsyncEngine, owner_id: uuid.UUID, subject_id: uuid.UUID, photo_id: uuid.UUID) -> Photo:
    """One photo of one of the owner's subjects; NotFound otherwise."""
    async with engine.connect() as conn:
        await get_subject(conn, owner_id, subject_id)
        return await get_photo(conn, subject_id, photo_id)


async def delete_photo(
    engine: AsyncEngine, storage: Storage, owner_id: uuid.UUID, subject_id: uuid.UUID, photo_id: uuid.UUID
) -> None:
    """The stored file and the row go; trainings already queued simply train without it."""
    photo = await subject_photo(engine, owner_id, subject_id, photo_id)
    await storage.delete(photo.storage_key)
    await delete_photo_row(engine, photo.id)


def require_s3(storage: Storage) -> None:
    """409 unless the store can hand out presigned URLs."""
    if storage.local_path("probe") is not None:
        raise Conflict(NOT_S3)


async def presign_uploads(
    engine: AsyncEngine,
    storage: Storage,
    services: TrainingServices,
    owner_id: uuid.UUID,
    subject_id: uuid.UUID,
    files: Sequence[PresignFile],
) -> PresignResult:
    """One PUT URL per file, each recorded as an ``awaiting_upload`` photo."""
    require_s3(storage)
    too_big = [
        {"field": f"files[{i}].size_bytes", "reason": f"larger than the {services.limits.max_bytes} bytes allowed"}
        for i, f in enumerate(files)
        if f.size_bytes > services.limits.max_bytes
    ]
    if too_big:
        raise ValidationFailed(too_big)
    async with engine.connect() as conn:
        subject = await writable_subject(conn, owner_id, subject_id)
    rows: list[dict[str, Any]] = []
    uploads = []
    for item in files:
        photo_id = uuid.uuid4()
        key = f"{subject_prefix(subject_id)}/uploads/{photo_id}"
        url = await storage.presigned_put(key, item.content_type, PRESIGN_EXPIRES_S)
        if url is None:
            raise Conflict(NOT_S3)
        rows.append(
            {
                "id": photo_id,
                "subject_id": subject_id,
                "owner_id": subject.owner_id,
                "status": "awaiting_upload",
                "storage_key": key,
                "original_filename": item.filename,
                "content_type": item.content_type,
                "size_bytes": item.size_bytes,
            }
        )
        headers = {"Content-Type": item.content_type}
        uploads.append(PresignedUpload(photo_id=photo_id, filename=item.filename, url=url, headers=headers))
    await insert_photos(engine, rows)
    return PresignResult(uploads=uploads, expires_in_s=PRESIGN_EXPIRES_S)


async def _fetch(storage: Storage, photo: Photo, limit: int) -> IncomingFile | None:
    try:
        data = await storage.get(photo.storage_key)
    except FileNotFoundError:
        return None
    name = photo.original_filename or str(photo.id)
    return IncomingFile(name, data if len(data) <= limit else None, len(data))


async def complete_uploads(
    engine: AsyncEngine,
    storage: Storage,
    services: TrainingServices,
    owner_id: uuid.UUID,
    subject_id: uuid.UUID,
    photo_ids: Sequence[uuid.UUID],
    policy: ContentPolicy,
) -> PhotoUploadResult:
    """Each uploaded file gets a verdict like a multipart upload (a person's explicit photo included); one not
    uploaded yet is reported as ``not_uploaded`` and can be completed later.
    """
    require_s3(storage)
    async with engine.connect() as conn:
        subject = await writable_subject(conn, owner_id, subject_id)
        photos = await list_photos(conn, subject_id, status=None)
    pending = {p.id: p for p in photos if p.status == "awaiting_upload"}
    unknown = [
        {"field": f"photo_ids[{i}]", "reason": "no upload awaiting completion"}
        for i, pid in enumerate(photo_ids)
        if pid not in pending
    ]
    if unknown:
        raise ValidationFailed(unknown)
    accepted = [p for p in photos if p.status == "accepted"]
    existing = existing_fingerprints(accepted)
    intake = PhotoIntake(subject, storage, services.limits, services.detector, existing, policy)
    finished: list[Photo] = []
    for photo_id in photo_ids:
        photo = pending[photo_id]
        incoming = await _fetch(storage, photo, services.limits.max_bytes)
        if incoming is None:
            intake.not_uploaded(photo.original_filename or str(photo.id))
            continue
        await intake.settle(await intake.check_later(incoming, photo.id))
        finished.append(photo)
    await intake.record_explicit(owner_id, uuid.uuid4())
    try:
        await replace_photos(engine, [p.id for p in finished], intake.rows)
    except BaseException:
        await intake.discard()
        raise
    for photo in finished:
        await storage.delete(photo.storage_key)
    return intake.result()
