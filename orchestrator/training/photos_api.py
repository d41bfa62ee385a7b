"""/v1/subjects/{id}/photos: multipart upload with a verdict per file, list, get, delete."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE, SETTINGS, STORAGE
from orchestrator.errors import ValidationFailed
from orchestrator.training.http import path_id, writable_subject
from orchestrator.training.photo_intake import PhotoIntake, existing_hashes, file_parts, take_uploads
from orchestrator.training.subject_schemas import PhotoList, PhotoOut, PhotoUploadResult
from orchestrator.training.subjects_db import (
    delete_photo_row,
    get_photo,
    get_subject,
    insert_photos,
    list_photos,
)
from orchestrator.training.training_services import TRAINING

router = Router()
PHOTO_FORM = {
    "type": "object",
    "description": "One file part per photo; the field names do not matter (`photo` is what the docs send).",
    "properties": {
        "photo": {
            "type": "array",
            "items": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"},
        }
    },
}


@router.route(
    "POST",
    "/v1/subjects/{id}/photos",
    summary="Upload photos (multipart, many files); a verdict per file",
    tag="photos",
    response=PhotoUploadResult,
    errors=(401, 404, 409, 413, 415, 422),
    multipart=PHOTO_FORM,
)
async def upload_photos(request: web.Request) -> web.Response:
    """Send ``multipart/form-data`` with one file part per photo (any field name). Each file is streamed with
    a per-file size limit and checked off the event loop: format and header (decompression-bomb guard before
    decoding), decode, size, sharpness, duplicates (perceptual hash) and, for a person, a face. The answer
    lists each file's verdict in upload order: accepted with its photo id, or the reason code and a message.
    Accepted photos are stored cleaned: EXIF orientation applied, EXIF/GPS and other metadata stripped.
    """
    subject_id, owner = path_id(request, "id", "subject"), request[OWNER]
    engine, services = request.app[ENGINE], request.app[TRAINING]
    async with engine.connect() as conn:
        subject = await writable_subject(conn, owner, subject_id)
        existing = existing_hashes(await list_photos(conn, subject_id))
    intake = PhotoIntake(subject, request.app[STORAGE], services.limits, services.detector, existing)
    settings = request.app[SETTINGS]
    try:
        await take_uploads(intake, file_parts(request, services.limits.max_bytes, settings.max_upload_bytes))
        if not intake.verdicts:
            raise ValidationFailed([{"field": "body", "reason": "no files: send one file part per photo"}])
        await insert_photos(engine, intake.rows)
    except BaseException:
        await intake.discard()
        raise
    return json_response(intake.result())


@router.route(
    "GET",
    "/v1/subjects/{id}/photos",
    summary="List a subject's photos",
    tag="photos",
    response=PhotoList,
    errors=(401, 404),
)
async def list_subject_photos(request: web.Request) -> web.Response:
    """Accepted photos and presigned uploads still awaiting completion, oldest first."""
    subject_id = path_id(request, "id", "subject")
    async with request.app[ENGINE].connect() as conn:
        await get_subject(conn, request[OWNER], subject_id)
        photos = await list_photos(conn, subject_id, status=None)
    return json_response(PhotoList(items=[PhotoOut.of(p) for p in photos]))


@router.route(
    "GET",
    "/v1/subjects/{id}/photos/{photo_id}",
    summary="Get one photo's record",
    tag="photos",
    response=PhotoOut,
    errors=(401, 404),
)
async def get_one_photo(request: web.Request) -> web.Response:
    """What the checks measured on the photo, and where it came from."""
    subject_id, photo_id = path_id(request, "id", "subject"), path_id(request, "photo_id", "photo")
    async with request.app[ENGINE].connect() as conn:
        await get_subject(conn, request[OWNER], subject_id)
        photo = await get_photo(conn, subject_id, photo_id)
    return json_response(PhotoOut.of(photo))


@router.route(
    "DELETE",
    "/v1/subjects/{id}/photos/{photo_id}",
    summary="Delete one photo",
    tag="photos",
    status=204,
    errors=(401, 404),
)
async def delete_one_photo(request: web.Request) -> web.Response:
    """The stored file and the row go; trainings already queued simply train without it."""
    subject_id, photo_id = path_id(request, "id", "subject"), path_id(request, "photo_id", "photo")
    engine = request.app[ENGINE]
    async with engine.connect() as conn:
        await get_subject(conn, request[OWNER], subject_id)
        photo = await get_photo(conn, subject_id, photo_id)
    await request.app[STORAGE].delete(photo.storage_key)
    await delete_photo_row(engine, photo.id)
    return web.Response(status=204)
