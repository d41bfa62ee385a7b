# SPDX-License-Identifier: Apache-2.0
"""/v1/generations: create (202 + events_url), list, get (with image URLs), images, preview, cancel, delete.

Another owner's generation, or another kind's job id, is a 404 everywhere.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from aiohttp import web

from orchestrator.api.auth import IDENTITY, OWNER
from orchestrator.api.bodies import json_response, parse_query, read_json_body
from orchestrator.api.files import stored_file_response
from orchestrator.api.idempotency import answer_after_race, claim, earlier_answer
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.api.schemas import Accepted
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS, STORAGE, STORE
from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.generation.acceptance import accept_template
from orchestrator.generation.generation_services import GENERATION
from orchestrator.generation.outputs import describe_image
from orchestrator.generation.payload import KIND, GenerationPayload, storage_prefix
from orchestrator.generation.queries import delete_generation, image_file, list_generations
from orchestrator.generation.registered import accept_registered
from orchestrator.generation.schemas import (
    BODY_TAGS,
    GenerationBody,
    GenerationList,
    GenerationListQuery,
    GenerationOut,
    RegisteredBody,
    WorkflowBody,
)
from orchestrator.generation.workflows import accept_workflow
from orchestrator.jobs.idempotency import IdempotencyKeyTaken
from orchestrator.jobs.queries import get_job
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.webhook_targets import accepted_webhook_url
from orchestrator.policy.feature import CONTENT_POLICY

router = Router()
TAG = "generations"


def _untagged(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic names a union member first (``txt2img.steps``); clients sent ``steps``."""
    fixed = []
    for error in errors:
        field = str(error["field"])
        head, _, rest = field.partition(".")
        if head in BODY_TAGS:
            field = rest or head
        elif not field:
            field = "template"
            error = {**error, "reason": "unknown template; use txt2img or img2img, or send {workflow: ...}"}
        fixed.append({**error, "field": field})
    return fixed


def body_limit(request: web.Request) -> int:
    """JSON bodies may carry one base64 init image besides the usual JSON."""
    settings = request.app[SETTINGS]
    return settings.max_json_body_bytes + math.ceil(settings.init_image_max_bytes * 4 / 3)


async def _body(request: web.Request) -> Any:
    request.app[GENERATION].backends()  # 503 before the body is read where no ComfyUI is configured
    try:
        return (await read_json_body(request, GenerationBody, limit=body_limit(request))).root
    except ValidationFailed as exc:
        raise ValidationFailed(_untagged(exc.errors)) from exc


async def _payload(request: web.Request, job_id: uuid.UUID, body: Any) -> GenerationPayload:
    app = request.app
    services = app[GENERATION]
    gate = app[CONTENT_POLICY].gate(request[IDENTITY])
    if isinstance(body, WorkflowBody):
        return await accept_workflow(services, app[STORAGE], job_id, body, gate)
    if isinstance(body, RegisteredBody):
        return await accept_registered(services, app[ENGINE], app[STORAGE], request[OWNER], job_id, body, gate)
    return await accept_template(services, app[ENGINE], app[STORAGE], request[OWNER], job_id, body, gate)


@router.route(
    "POST",
    "/v1/generations",
    summary="Generate images",
    tag=TAG,
    body=GenerationBody,
    response=Accepted,
    status=202,
    idempotent=True,
    errors=(400, 401, 413, 415, 422, 503),
    content_policy=True,
)
async def create_generation(request: web.Request) -> web.Response:
    """Checks the request against a ready backend (422 naming the field), then queues it; follow events_url."""
    body = await _body(request)
    if (earlier := await earlier_answer(request)) is not None:
        return earlier
    job_id = uuid.uuid4()
    payload = await _payload(request, job_id, body)
    accepted, location = Accepted(id=job_id, events_url=f"/v1/jobs/{job_id}/events"), f"/v1/generations/{job_id}"
    try:
        job = NewJob(
            owner_id=request[OWNER],
            kind=KIND,
            payload=payload.model_dump(mode="json"),
            priority=body.priority,
            max_attempts=request.app[SETTINGS].max_attempts,
            webhook_url=accepted_webhook_url(body.webhook_url, request.app[SETTINGS].webhook_allow_hosts),
            affinity_key=payload.affinity_key(),
            id=job_id,
            idempotency=claim(request, accepted, location),
        )
        await request.app[STORE].create(job)
    except BaseException as exc:
        if payload.uploads:
            await request.app[STORAGE].delete_prefix(storage_prefix(job_id))
        if isinstance(exc, IdempotencyKeyTaken):
            return await answer_after_race(request)
        raise
    request.app[METRICS].jobs_accepted.labels(KIND).inc()
    return json_response(accepted, 202, headers={"Location": location})


@router.route(
    "GET",
    "/v1/generations",
    summary="List the caller's generations",
    tag=TAG,
    query=GenerationListQuery,
    response=GenerationList,
    errors=(401, 422),
)
async def list_all_generations(request: web.Request) -> web.Response:
    """Newest first, with a cursor for the next page; filter by status, template, base_model."""
    query = parse_query(request, GenerationListQuery)
    jobs, next_cursor = await list_generations(
        request.app[ENGINE],
        request[OWNER],
        status=query.status,
        template=query.template,
        base_model=query.base_model,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(GenerationList(items=[GenerationOut.of(j) for j in jobs], next_cursor=next_cursor))


@router.route(
    "GET", "/v1/generations/{id}", summary="Get one generation", tag=TAG, response=GenerationOut, errors=(401, 404)
)
async def get_generation(request: web.Request) -> web.Response:
    """The generation, its progress, images (URLs), result or error."""
    job = await get_job(request.app[ENGINE], path_uuid(request, "generation"), request[OWNER], kind=KIND)
    return json_response(GenerationOut.of(job))


@router.route(
    "GET",
    "/v1/generations/{id}/images/{n}",
    summary="Download one image",
    tag=TAG,
    produces="image/png",
    errors=(401, 404),
    extra_responses={302: "With S3 storage: a redirect to a presigned URL."},
)
async def get_generation_image(request: web.Request) -> web.StreamResponse:
    """The n-th image (0-based) of a generation."""
    index = request.match_info["n"]
    if not (index.isascii() and index.isdigit() and len(index) <= 4):  # a batch holds at most 4 images
        raise NotFound(f"no image {index!r}")
    found = await image_file(request.app[ENGINE], path_uuid(request, "generation"), request[OWNER], int(index))
    if found is None:
        raise NotFound(f"generation {request.match_info['id']} has no image {index}")
    if found.pending is not None:  # what storage holds may not be durable yet: these bytes are
        return web.Response(body=found.pending, headers={"Content-Type": found.content_type})
    return await stored_file_response(request.app[STORAGE], found.key, found.content_type)


@router.route(
    "GET",
    "/v1/generations/{id}/preview",
    summary="The latest live preview",
    tag=TAG,
    produces="image/png",
    errors=(401, 404),
)
async def get_generation_preview(request: web.Request) -> web.StreamResponse:
    """The latest preview image a running generation sent (job.preview events point here)."""
    job = await get_job(request.app[ENGINE], path_uuid(request, "generation"), request[OWNER], kind=KIND)
    key = f"{storage_prefix(job.id)}/preview"
    try:
        data = await request.app[STORAGE].get(key)
    except FileNotFoundError as exc:
        raise NotFound("this generation has no preview") from exc
    return web.Response(body=data, content_type=describe_image(data)[0], headers={"Cache-Control": "no-store"})


@router.route(
    "POST",
    "/v1/generations/{id}/cancel",
    summary="Cancel a generation",
    tag=TAG,
    response=GenerationOut,
    status=202,
    errors=(401, 404, 409),
)
async def cancel_generation(request: web.Request) -> web.Response:
    """202 with the generation: a queued one is already cancelled in it; for a running one ComfyUI is told
    to stop, and job.cancelled follows on the events stream."""
    engine, owner = request.app[ENGINE], request[OWNER]
    job_id = path_uuid(request, "generation")
    await get_job(engine, job_id, owner, kind=KIND)
    await request.app[STORE].request_cancel(job_id, owner)
    job = await get_job(engine, job_id, owner, kind=KIND)
    return json_response(GenerationOut.of(job), 202)


@router.route(
    "DELETE",
    "/v1/generations/{id}",
    summary="Delete a generation and its images",
    tag=TAG,
    status=204,
    errors=(401, 404, 409),
)
async def delete_one_generation(request: web.Request) -> web.Response:
    """Removes the stored images (and init image, preview), the job, its events and image rows.
    Only finished generations: a queued or running one is a 409 (cancel it first)."""
    await delete_generation(request.app[ENGINE], request.app[STORAGE], path_uuid(request, "generation"), request[OWNER])
    return web.Response(status=204)
