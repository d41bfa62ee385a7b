"""/v1/subjects: create (with consent), list, get, and erase (202 + an ``erasure`` job)."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from orchestrator.api.auth import API_KEY_ID, IDENTITY, OWNER
from orchestrator.api.bodies import json_response, parse_query, read_json_body
from orchestrator.api.idempotency import answer_after_race, claim, earlier_answer
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.api.schemas import Accepted, PageQuery
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS
from orchestrator.jobs.idempotency import IdempotencyKeyTaken
from orchestrator.policy.feature import CONTENT_POLICY
from orchestrator.training import subjects
from orchestrator.training.subject_queries import get_subject_view, list_subjects
from orchestrator.training.subject_schemas import SubjectCreate, SubjectList, SubjectOut

router = Router()


@router.route(
    "POST",
    "/v1/subjects",
    summary="Create a subject (a person needs recorded consent)",
    tag="subjects",
    body=SubjectCreate,
    response=SubjectOut,
    status=201,
    errors=(400, 401, 409, 413, 415, 422),
    content_policy=True,
)
async def create_subject(request: web.Request) -> web.Response:
    """A person subject is refused (422 naming each field) unless consent is confirmed and the person is an adult.

    The consent record keeps who attested (owner, API key) and when; its SHA-256 is returned and goes into
    the provenance metadata of every LoRA trained on the subject.
    """
    body = await read_json_body(request, SubjectCreate)
    gate = request.app[CONTENT_POLICY].gate(request[IDENTITY])
    view = await subjects.create_subject(request.app[ENGINE], request[OWNER], request.get(API_KEY_ID), body, gate)
    return json_response(SubjectOut.of(view), 201, headers={"Location": f"/v1/subjects/{view.subject.id}"})


@router.route(
    "GET",
    "/v1/subjects",
    summary="List your subjects",
    tag="subjects",
    query=PageQuery,
    response=SubjectList,
    errors=(401, 422),
)
async def list_all_subjects(request: web.Request) -> web.Response:
    """Newest first, with a cursor for the next page."""
    query = parse_query(request, PageQuery)
    views, next_cursor = await list_subjects(request.app[ENGINE], request[OWNER], query.limit, query.cursor)
    return json_response(SubjectList(items=[SubjectOut.of(v) for v in views], next_cursor=next_cursor))


@router.route(
    "GET", "/v1/subjects/{id}", summary="Get one subject", tag="subjects", response=SubjectOut, errors=(401, 404)
)
async def get_one_subject(request: web.Request) -> web.Response:
    """The subject, its consent record and its number of accepted photos."""
    view = await get_subject_view(request.app[ENGINE], request[OWNER], path_uuid(request, "subject"))
    return json_response(SubjectOut.of(view))


@router.route(
    "DELETE",
    "/v1/subjects/{id}",
    summary="Erase a subject: photos, datasets, LoRAs, rows",
    tag="subjects",
    response=Accepted,
    status=202,
    idempotent=True,
    errors=(401, 404),
)
async def erase_subject(request: web.Request) -> web.Response:
    """Queue an ``erasure`` job. It cancels the subject's trainings, then removes its photos, prepared datasets
    and run folders, its LoRA files (storage and the models store) and its rows; an audit record with ids
    and counts only stays in ``erasures``. Asking again while one is pending returns the same job.
    """
    if (earlier := await earlier_answer(request)) is not None:
        return earlier
    subject_id, owner = path_uuid(request, "subject"), request[OWNER]
    job = subjects.erasure_job(owner, subject_id, max_attempts=request.app[SETTINGS].max_attempts)
    new = Accepted(id=job.id, events_url=f"/v1/jobs/{job.id}/events")
    job = dataclasses.replace(job, idempotency=claim(request, new, f"/v1/jobs/{job.id}"))
    try:
        job_id, queued = await subjects.request_erasure(request.app[ENGINE], owner, subject_id, job)
    except IdempotencyKeyTaken:
        return await answer_after_race(request)
    if queued:
        request.app[METRICS].jobs_accepted.labels(subjects.ERASURE_KIND).inc()
    accepted = Accepted(id=job_id, events_url=f"/v1/jobs/{job_id}/events")
    return json_response(accepted, 202, headers={"Location": f"/v1/jobs/{job_id}"})
