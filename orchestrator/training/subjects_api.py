"""/v1/subjects: create (with consent), list, get, and erase (202 + an ``erasure`` job)."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy import delete, insert, select

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query, read_json_body
from orchestrator.api.routing import Router
from orchestrator.api.schemas import Accepted, PageQuery
from orchestrator.app_keys import ENGINE, METRICS, SETTINGS, STORE
from orchestrator.db.models import Erasure, Subject
from orchestrator.errors import ValidationFailed
from orchestrator.jobs.store import NewJob
from orchestrator.training.consent import api_key_id, consent_problems, consent_record
from orchestrator.training.http import path_id
from orchestrator.training.subject_schemas import SubjectCreate, SubjectList, SubjectOut
from orchestrator.training.subjects_db import (
    SubjectView,
    get_subject,
    get_subject_view,
    insert_subject,
    list_subjects,
    pending_erasure,
)

router = Router()
ERASURE_KIND = "erasure"


@router.route(
    "POST",
    "/v1/subjects",
    summary="Create a subject (a person needs recorded consent)",
    tag="subjects",
    body=SubjectCreate,
    response=SubjectOut,
    status=201,
    errors=(400, 401, 409, 413, 415, 422),
)
async def create_subject(request: web.Request) -> web.Response:
    """A person subject is refused (422 naming each field) unless consent is confirmed and the person is an adult.

    The consent record keeps who attested (owner, API key) and when; its SHA-256 is returned and goes into
    the provenance metadata of every LoRA trained on the subject.
    """
    body = await read_json_body(request, SubjectCreate)
    consent = body.consent
    problems = consent_problems(
        body.kind, consent.confirmed if consent else None, consent.subject_is_adult if consent else None
    )
    if problems:
        raise ValidationFailed(problems)
    engine, owner = request.app[ENGINE], request[OWNER]
    record, digest = consent_record(
        subject={"name": body.name, "kind": body.kind.value, "trigger_word": body.trigger_word},
        confirmed=bool(consent and consent.confirmed),
        subject_is_adult=bool(consent and consent.subject_is_adult),
        statement=consent.statement if consent else None,
        owner_id=owner,
        key_id=await api_key_id(request, engine),
    )
    subject = await insert_subject(
        engine,
        {
            "id": uuid.uuid4(),
            "owner_id": owner,
            "name": body.name,
            "kind": body.kind.value,
            "trigger_word": body.trigger_word,
            "class_word": body.class_word,
            "consent": record,
            "consent_sha256": digest,
        },
    )
    out = SubjectOut.of(SubjectView(subject, 0, None))
    return json_response(out, 201, headers={"Location": f"/v1/subjects/{subject.id}"})


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
    view = await get_subject_view(request.app[ENGINE], request[OWNER], path_id(request, "id", "subject"))
    return json_response(SubjectOut.of(view))


@router.route(
    "DELETE",
    "/v1/subjects/{id}",
    summary="Erase a subject: photos, datasets, LoRAs, rows",
    tag="subjects",
    response=Accepted,
    status=202,
    errors=(401, 404),
)
async def erase_subject(request: web.Request) -> web.Response:
    """Queue an ``erasure`` job. It cancels the subject's trainings, then removes its photos, prepared datasets
    and run folders, its LoRA files (storage and the models store) and its rows; an audit record with ids
    and counts only stays in ``erasures``. Asking again while one is pending returns the same job.
    """
    subject_id, owner = path_id(request, "id", "subject"), request[OWNER]
    engine, settings = request.app[ENGINE], request.app[SETTINGS]
    job = NewJob(
        owner_id=owner,
        kind=ERASURE_KIND,
        payload={"subject_id": str(subject_id)},
        max_attempts=settings.max_attempts,
    )
    async with engine.begin() as conn:
        await get_subject(conn, owner, subject_id)
        await conn.execute(select(Subject.id).where(Subject.id == subject_id).with_for_update())
        existing = await pending_erasure(conn, subject_id)
        if existing is None:
            await conn.execute(insert(Erasure).values(owner_id=owner, subject_id=subject_id, job_id=job.id))
    if existing is not None and existing.job_id is not None:
        job_id = existing.job_id
    else:
        job_id = job.id
        try:
            await request.app[STORE].create(job)
        except BaseException:
            async with engine.begin() as conn:
                await conn.execute(delete(Erasure).where(Erasure.job_id == job.id, Erasure.completed_at.is_(None)))
            raise
        request.app[METRICS].jobs_accepted.labels(ERASURE_KIND).inc()
    accepted = Accepted(id=job_id, events_url=f"/v1/jobs/{job_id}/events")
    return json_response(accepted, 202, headers={"Location": f"/v1/jobs/{job_id}"})
