"""Direct-to-storage photo uploads (S3 mode): presigned PUT URLs, then ``complete`` runs the checks.

``presign`` records each file as an ``awaiting_upload`` photo with its own upload key and returns a PUT URL.
``complete`` reads each uploaded object, checks it exactly like a multipart upload, stores the cleaned
image under the photo's final key and removes the raw upload (rejected uploads lose their row too).
With a local store there is nothing to presign: 409, upload with multipart instead.

Known limit: the storage interface has no size lookup, so ``complete`` reads the object before it can
compare its size with the limit; the size declared at ``presign`` is checked against the limit first.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from sqlalchemy import delete, insert

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, read_json_body
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE, STORAGE
from orchestrator.db.models import Photo
from orchestrator.errors import Conflict, ValidationFailed
from orchestrator.storage import Storage
from orchestrator.training.http import path_id, writable_subject
from orchestrator.training.photo_intake import IncomingFile, PhotoIntake, existing_hashes, subject_prefix
from orchestrator.training.subject_schemas import (
    CompleteRequest,
    PhotoUploadResult,
    PresignedUpload,
    PresignRequest,
    PresignResult,
)
from orchestrator.training.subjects_db import insert_photos, list_photos
from orchestrator.training.training_services import TRAINING

router = Router()
PRESIGN_EXPIRES_S = 3600


def _require_s3(storage: Storage) -> None:
    if storage.local_path("probe") is not None:
        raise Conflict(
            "presigned uploads need S3 storage (ATELIER_STORAGE_URL=s3://...); this service keeps files on local "
            "disk: upload with multipart POST /v1/subjects/{id}/photos instead"
        )


@router.route(
    "POST",
    "/v1/subjects/{id}/photos/presign",
    summary="Presigned PUT URLs for direct photo uploads (S3 storage only)",
    tag="photos",
    body=PresignRequest,
    response=PresignResult,
    errors=(401, 404, 409, 415, 422),
)
async def presign_photos(request: web.Request) -> web.Response:
    """One PUT URL per file (send the same Content-Type); then call ``/photos/complete`` with the photo ids."""
    storage, services = request.app[STORAGE], request.app[TRAINING]
    _require_s3(storage)
    body = await read_json_body(request, PresignRequest)
    too_big = [
        {"field": f"files[{i}].size_bytes", "reason": f"larger than the {services.limits.max_bytes} bytes allowed"}
        for i, f in enumerate(body.files)
        if f.size_bytes > services.limits.max_bytes
    ]
    if too_big:
        raise ValidationFailed(too_big)
    subject_id = path_id(request, "id", "subject")
    async with request.app[ENGINE].connect() as conn:
        subject = await writable_subject(conn, request[OWNER], subject_id)
    rows: list[dict[str, Any]] = []
    uploads = []
    for item in body.files:
        photo_id = uuid.uuid4()
        key = f"{subject_prefix(subject_id)}/uploads/{photo_id}"
        url = await storage.presigned_put(key, item.content_type, PRESIGN_EXPIRES_S)
        assert url is not None
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
    await insert_photos(request.app[ENGINE], rows)
    return json_response(PresignResult(uploads=uploads, expires_in_s=PRESIGN_EXPIRES_S))


async def _fetch(storage: Storage, photo: Photo, limit: int) -> IncomingFile | None:
    try:
        data = await storage.get(photo.storage_key)
    except FileNotFoundError:
        return None
    name = photo.original_filename or str(photo.id)
    return IncomingFile(name, data if len(data) <= limit else None, len(data))


@router.route(
    "POST",
    "/v1/subjects/{id}/photos/complete",
    summary="Check presigned uploads that have finished",
    tag="photos",
    body=CompleteRequest,
    response=PhotoUploadResult,
    errors=(401, 404, 409, 415, 422),
)
async def complete_photos(request: web.Request) -> web.Response:
    """Each uploaded file gets a verdict like a multipart upload; a file not uploaded yet is reported as
    ``not_uploaded`` and can be completed later.
    """
    storage, services, engine = request.app[STORAGE], request.app[TRAINING], request.app[ENGINE]
    _require_s3(storage)
    body = await read_json_body(request, CompleteRequest)
    subject_id = path_id(request, "id", "subject")
    async with engine.connect() as conn:
        subject = await writable_subject(conn, request[OWNER], subject_id)
        photos = await list_photos(conn, subject_id, status=None)
    pending = {p.id: p for p in photos if p.status == "awaiting_upload"}
    unknown = [
        {"field": f"photo_ids[{i}]", "reason": "no upload awaiting completion"}
        for i, pid in enumerate(body.photo_ids)
        if pid not in pending
    ]
    if unknown:
        raise ValidationFailed(unknown)
    accepted = [p for p in photos if p.status == "accepted"]
    intake = PhotoIntake(subject, storage, services.limits, services.detector, existing_hashes(accepted))
    finished: list[Photo] = []
    for photo_id in body.photo_ids:
        photo = pending[photo_id]
        incoming = await _fetch(storage, photo, services.limits.max_bytes)
        if incoming is None:
            intake.not_uploaded(photo.original_filename or str(photo.id))
            continue
        await intake.settle(await intake.check_later(incoming, photo.id))
        finished.append(photo)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(Photo).where(Photo.id.in_([p.id for p in finished])))
            if intake.rows:
                await conn.execute(insert(Photo), intake.rows)
    except BaseException:
        await intake.discard()
        raise
    for photo in finished:
        await storage.delete(photo.storage_key)
    return json_response(intake.result())
