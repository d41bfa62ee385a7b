"""/v1/jobs: every job of the caller, whatever its kind; the ``noop`` kind can be created here."""

from __future__ import annotations

import uuid
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query, read_json_body
from orchestrator.api.idempotency import answer_after_race, claim, earlier_answer
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.api.schemas import Accepted, ListQuery, Page
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS, STORE
from orchestrator.jobs.idempotency import IdempotencyKeyTaken
from orchestrator.jobs.kinds import NoopPayload
from orchestrator.jobs.queries import get_job, list_jobs
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.views import JobOut
from orchestrator.jobs.webhook_targets import accepted_webhook_url

router = Router()


class CreateJob(BaseModel):
    """A diagnostic job: it only reports progress. Generations and trainings have their own endpoints."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["noop"] = Field(description="The job kind; only noop is created through this endpoint.")
    payload: NoopPayload = Field(default_factory=NoopPayload)
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first.")
    webhook_url: HttpUrl | None = Field(None, description="Called with the job when it ends.")


class JobListQuery(ListQuery):
    """Filters for /v1/jobs."""

    kind: str | None = Field(None, description="Only jobs of this kind.")


class JobList(Page[JobOut]):
    """A page of jobs, newest first."""


@router.route(
    "POST",
    "/v1/jobs",
    summary="Queue a diagnostic noop job",
    tag="jobs",
    body=CreateJob,
    response=Accepted,
    status=202,
    idempotent=True,
    errors=(400, 401, 413, 415, 422),
)
async def create_job(request: web.Request) -> web.Response:
    """Accept a noop job: row + job.queued event in one transaction, then 202."""
    body = await read_json_body(request, CreateJob)
    if (earlier := await earlier_answer(request)) is not None:
        return earlier
    job_id = uuid.uuid4()
    accepted, location = Accepted(id=job_id, events_url=f"/v1/jobs/{job_id}/events"), f"/v1/jobs/{job_id}"
    job = NewJob(
        owner_id=request[OWNER],
        kind=body.kind,
        payload=body.payload.model_dump(),
        priority=body.priority,
        max_attempts=request.app[SETTINGS].max_attempts,
        webhook_url=accepted_webhook_url(body.webhook_url, request.app[SETTINGS].webhook_allow_hosts),
        id=job_id,
        idempotency=claim(request, accepted, location),
    )
    try:
        await request.app[STORE].create(job)
    except IdempotencyKeyTaken:
        return await answer_after_race(request)
    request.app[METRICS].jobs_accepted.labels(job.kind).inc()
    return json_response(accepted, 202, headers={"Location": location})


@router.route(
    "GET",
    "/v1/jobs",
    summary="List the caller's jobs",
    tag="jobs",
    query=JobListQuery,
    response=JobList,
    errors=(401, 422),
)
async def list_all_jobs(request: web.Request) -> web.Response:
    """Newest first, with a cursor for the next page."""
    query = parse_query(request, JobListQuery)
    jobs, next_cursor = await list_jobs(
        request.app[ENGINE],
        request[OWNER],
        kind=query.kind,
        status=query.status.value if query.status else None,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(JobList(items=[JobOut.of(j) for j in jobs], next_cursor=next_cursor))


@router.route("GET", "/v1/jobs/{id}", summary="Get one job", tag="jobs", response=JobOut, errors=(401, 404))
async def get_one_job(request: web.Request) -> web.Response:
    """The job, its progress, result or error."""
    job = await get_job(request.app[ENGINE], path_uuid(request, "job"), request[OWNER])
    return json_response(JobOut.of(job))


@router.route(
    "POST",
    "/v1/jobs/{id}/cancel",
    summary="Cancel a job",
    tag="jobs",
    response=JobOut,
    status=202,
    errors=(401, 404, 409),
)
async def cancel_job(request: web.Request) -> web.Response:
    """202 with the job: a queued job is already cancelled in it; a running one is stopped by its worker
    (job.cancelled follows on the events stream)."""
    job_id = path_uuid(request, "job")
    await request.app[STORE].request_cancel(job_id, request[OWNER])
    job = await get_job(request.app[ENGINE], job_id, request[OWNER])
    return json_response(JobOut.of(job), 202)
