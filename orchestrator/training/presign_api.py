"""Direct-to-storage photo uploads (S3 mode): presigned PUT URLs, then ``complete`` runs the checks.

What each step does is :mod:`orchestrator.training.subject_photos`; with a local store both answer 409.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, read_json_body
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE, STORAGE
from orchestrator.policy.feature import CONTENT_POLICY
from orchestrator.training import subject_photos
from orchestrator.training.subject_schemas import CompleteRequest, PhotoUploadResult, PresignRequest, PresignResult
from orchestrator.training.training_services import TRAINING

router = Router()


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
    app = request.app
    subject_photos.require_s3(app[STORAGE])
    body = await read_json_body(request, PresignRequest)
    result = await subject_photos.presign_uploads(
        app[ENGINE], app[STORAGE], app[TRAINING], request[OWNER], path_uuid(request, "subject"), body.files
    )
    return json_response(result)


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
    app = request.app
    subject_photos.require_s3(app[STORAGE])
    body = await read_json_body(request, CompleteRequest)
    subject_id = path_uuid(request, "subject")
    result = await subject_photos.complete_uploads(
        app[ENGINE], app[STORAGE], app[TRAINING], request[OWNER], subject_id, body.photo_ids, app[CONTENT_POLICY]
    )
    return json_response(result)
