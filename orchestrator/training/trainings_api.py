"""/v1/trainings: submit (validated before queueing), list, get, cancel, resume, and the run's artifacts."""

from __future__ import annotations

import uuid

from aiohttp import web

from orchestrator.api.auth import IDENTITY, OWNER
from orchestrator.api.bodies import json_response, parse_query, read_json_body
from orchestrator.api.files import stored_file_response
from orchestrator.api.idempotency import answer_after_race, claim, earlier_answer
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.api.schemas import Accepted, ListQuery
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS, STORAGE, STORE
from orchestrator.errors import NotFound
from orchestrator.jobs.idempotency import IdempotencyKeyTaken
from orchestrator.jobs.queries import get_job, list_jobs
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.webhook_targets import accepted_webhook_url
from orchestrator.policy.feature import CONTENT_POLICY
from orchestrator.training.kind import KIND
from orchestrator.training.submission import build_payload
from orchestrator.training.supervisor_relay import ARTIFACT_KINDS, artifact_key
from orchestrator.training.training_schemas import (
    TrainingCreate,
    TrainingList,
    TrainingOut,
    TrainingPayload,
)
from orchestrator.training.training_services import TRAINING
from orchestrator.training.trainings import resume_payload, training_view, training_views

router = Router()


def _accepted(job_id: uuid.UUID) -> tuple[Accepted, str]:
    return Accepted(id=job_id, events_url=f"/v1/jobs/{job_id}/events"), f"/v1/trainings/{job_id}"


@router.route(
    "POST",
    "/v1/trainings",
    summary="Train a LoRA on a subject's photos",
    tag="trainings",
    body=TrainingCreate,
    response=Accepted,
    status=202,
    idempotent=True,
    errors=(400, 401, 409, 413, 415, 422, 503),
    content_policy=True,
)
async def create_training(request: web.Request) -> web.Response:
    """Checked before it is queued (nothing is written when refused): the subject (yours, consent that allows
    training, at least one accepted photo), the base model (in models/checkpoints, family sd15/sdxl/flux),
    the parameters as sd-scripts will see them, and that sd-scripts is configured (503 otherwise).
    Progress, samples, checkpoints and the LoRA arrive as events on ``events_url``.
    """
    body = await read_json_body(request, TrainingCreate)
    if (earlier := await earlier_answer(request)) is not None:
        return earlier
    app = request.app
    gate = app[CONTENT_POLICY].gate(request[IDENTITY])
    payload = await build_payload(app[ENGINE], app[TRAINING], request[OWNER], body, gate)
    return await _queue(request, payload)


async def _queue(request: web.Request, payload: TrainingPayload) -> web.Response:
    job_id = uuid.uuid4()
    accepted, location = _accepted(job_id)
    job = NewJob(
        owner_id=request[OWNER],
        kind=KIND,
        payload=payload.model_dump(mode="json"),
        priority=payload.priority,
        max_attempts=request.app[SETTINGS].max_attempts,
        webhook_url=accepted_webhook_url(payload.webhook_url, request.app[SETTINGS].webhook_allow_hosts),
        id=job_id,
        idempotency=claim(request, accepted, location),
    )
    try:
        await request.app[STORE].create(job)
    except IdempotencyKeyTaken:
        return await answer_after_race(request)
    request.app[METRICS].jobs_accepted.labels(KIND).inc()
    return json_response(accepted, 202, headers={"Location": location})


@router.route(
    "GET",
    "/v1/trainings",
    summary="List your trainings",
    tag="trainings",
    query=ListQuery,
    response=TrainingList,
    errors=(401, 422),
)
async def list_trainings(request: web.Request) -> web.Response:
    """Newest first, with each run's progress and the LoRA version it produced."""
    query = parse_query(request, ListQuery)
    engine = request.app[ENGINE]
    jobs, next_cursor = await list_jobs(
        engine,
        request[OWNER],
        kind=KIND,
        status=query.status.value if query.status else None,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(TrainingList(items=await training_views(engine, jobs), next_cursor=next_cursor))


@router.route(
    "GET", "/v1/trainings/{id}", summary="Get one training", tag="trainings", response=TrainingOut, errors=(401, 404)
)
async def get_training(request: web.Request) -> web.Response:
    """The job, its run (process, saved state, dataset manifest hash) and the LoRA version it produced."""
    return json_response(await training_view(request.app[ENGINE], request[OWNER], path_uuid(request, "training")))


@router.route(
    "POST",
    "/v1/trainings/{id}/cancel",
    summary="Cancel a training",
    tag="trainings",
    response=TrainingOut,
    status=202,
    errors=(401, 404, 409),
)
async def cancel_training(request: web.Request) -> web.Response:
    """202 with the training: a queued one is already cancelled in it; a running one's process group is
    stopped, and job.cancelled follows on the events stream."""
    engine, owner = request.app[ENGINE], request[OWNER]
    job_id = path_uuid(request, "training")
    await get_job(engine, job_id, owner, kind=KIND)
    await request.app[STORE].request_cancel(job_id, owner)
    return json_response(await training_view(engine, owner, job_id), 202)


@router.route(
    "POST",
    "/v1/trainings/{id}/resume",
    summary="Continue a stopped training from its last saved state",
    tag="trainings",
    response=Accepted,
    status=202,
    idempotent=True,
    errors=(401, 404, 409, 422, 503),
)
async def resume_training(request: web.Request) -> web.Response:
    """A cancelled or failed training continues from its latest saved state as a new job (``resumed_from``
    links the two); same parameters and dataset. 409 when it is not stopped or saved no state.
    """
    if (earlier := await earlier_answer(request)) is not None:
        return earlier
    app = request.app
    payload = await resume_payload(app[ENGINE], app[TRAINING], request[OWNER], path_uuid(request, "training"))
    return await _queue(request, payload)


@router.route(
    "GET",
    "/v1/trainings/{id}/artifacts/{folder}/{name}",
    summary="A training's sample image or checkpoint",
    tag="trainings",
    produces="application/octet-stream",
    errors=(401, 404),
)
async def get_artifact(request: web.Request) -> web.StreamResponse:
    """The file a ``job.artifact`` event of kind sample or checkpoint points to (S3: a redirect)."""
    job_id = path_uuid(request, "training")
    await get_job(request.app[ENGINE], job_id, request[OWNER], kind=KIND)
    folder, name = request.match_info["folder"], request.match_info["name"]
    if folder not in ARTIFACT_KINDS or "/" in name or name.startswith("."):
        raise NotFound(f"no artifact {folder}/{name}")
    return await stored_file_response(
        request.app[STORAGE], artifact_key(job_id, folder, name), ARTIFACT_KINDS[folder], name
    )
