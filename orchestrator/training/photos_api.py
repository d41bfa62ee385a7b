"""/v1/subjects/{id}/photos: multipart upload with a verdict per file, list, get, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response
from orchestrator.api.multipart import FilePart
from orchestrator.api.multipart import file_parts as multipart_files
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import UUID_PATTERN, Router
from orchestrator.app_keys import ENGINE, SETTINGS, STORAGE
from orchestrator.policy.feature import CONTENT_POLICY
from orchestrator.training import subject_photos
from orchestrator.training.photo_intake import IncomingFile
from orchestrator.training.subject_schemas import PhotoList, PhotoOut, PhotoUploadResult
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


async def read_file_part(part: FilePart, limit: int) -> IncomingFile:
    """Read one file part in chunks; keep at most ``limit`` bytes (a larger file is counted and dropped as it
    streams, never held whole). The request's total is bounded by :class:`FilePart` itself.
    """
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    return IncomingFile(part.filename, b"".join(chunks) if size <= limit else None, size)


async def file_parts(request: web.Request, limit: int, total_limit: int) -> AsyncIterator[IncomingFile]:
    """The file parts of a multipart/form-data request (fields without a filename are skipped)."""
    async for part in multipart_files(request, total_limit, "photos (one file part per photo)"):
        yield await read_file_part(part, limit)


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
    lists each file's verdict in upload order: accepted with its photo id, or the reason code and a message
    (``explicit_content``: a person's photo that the content policy's classifier found sexually explicit).
    Accepted photos are stored cleaned: EXIF orientation applied, EXIF/GPS and other metadata stripped.
    """
    app = request.app
    services = app[TRAINING]
    files = file_parts(request, services.limits.max_bytes, app[SETTINGS].max_upload_bytes)
    result = await subject_photos.upload_photos(
        app[ENGINE], app[STORAGE], services, request[OWNER], path_uuid(request, "subject"), files, app[CONTENT_POLICY]
    )
    return json_response(result)


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
    found = await subject_photos.subject_photos(request.app[ENGINE], request[OWNER], path_uuid(request, "subject"))
    return json_response(PhotoList(items=[PhotoOut.of(p) for p in found]))


@router.route(
    "GET",
    "/v1/subjects/{id}/photos/{photo_id}",
    summary="Get one photo's record",
    tag="photos",
    patterns={"photo_id": UUID_PATTERN},
    response=PhotoOut,
    errors=(401, 404),
)
async def get_one_photo(request: web.Request) -> web.Response:
    """What the checks measured on the photo, and where it came from."""
    subject_id, photo_id = path_uuid(request, "subject"), path_uuid(request, "photo", "photo_id")
    return json_response(
        PhotoOut.of(await subject_photos.subject_photo(request.app[ENGINE], request[OWNER], subject_id, photo_id))
    )


@router.route(
    "DELETE",
    "/v1/subjects/{id}/photos/{photo_id}",
    summary="Delete one photo",
    tag="photos",
    patterns={"photo_id": UUID_PATTERN},
    status=204,
    errors=(401, 404),
)
async def delete_one_photo(request: web.Request) -> web.Response:
    """The stored file and the row go; trainings already queued simply train without it."""
    subject_id, photo_id = path_uuid(request, "subject"), path_uuid(request, "photo", "photo_id")
    await subject_photos.delete_photo(request.app[ENGINE], request.app[STORAGE], request[OWNER], subject_id, photo_id)
    return web.Response(status=204)
