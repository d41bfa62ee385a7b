"""Subjects: creating one under a consent record, and queueing a subject's erasure."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import ValidationFailed
from orchestrator.jobs.idempotency import IdempotencyKeyTaken
from orchestrator.jobs.records import NewJob
from orchestrator.policy import ContentGate
from orchestrator.training.consent import consent_problems, consent_record
from orchestrator.training.content import subject_fields
from orchestrator.training.erasure import KIND as ERASURE_KIND
from orchestrator.training.subject_queries import SubjectView, accept_erasure, insert_subject
from orchestrator.training.subject_schemas import SubjectCreate


async def create_subject(
    engine: AsyncEngine, owner_id: uuid.UUID, key_id: uuid.UUID | None, body: SubjectCreate, gate: ContentGate
) -> SubjectView:
    """A person subject is refused (naming each field) unless consent is confirmed and the person is an adult.
    Its name, trigger word and class word go past the content policy first.

    The consent record keeps who attested (owner, API key) and when; its SHA-256 goes into the provenance
    metadata of every LoRA trained on the subject.
    """
    await gate.check(subject_fields(body.name, body.trigger_word, body.class_word))
    consent = body.consent
    problems = consent_problems(
        body.kind, consent.confirmed if consent else None, consent.subject_is_adult if consent else None
    )
    if problems:
        raise ValidationFailed(problems)
    record, digest = consent_record(
        subject={"name": body.name, "kind": body.kind.value, "trigger_word": body.trigger_word},
        confirmed=bool(consent and consent.confirmed),
        subject_is_adult=bool(consent and consent.subject_is_adult),
        statement=consent.statement if consent else None,
        owner_id=owner_id,
        key_id=key_id,
    )
    subject = await insert_subject(
        engine,
        {
            "id": uuid.uuid4(),
            "owner_id": owner_id,
            "name": body.name,
            "kind": body.kind.value,
            "trigger_word": body.trigger_word,
            "class_word": body.class_word,
            "consent": record,
            "consent_sha256": digest,
        },
    )
    return SubjectView(subject, 0, None)


async def request_erasure(
    engine: AsyncEngine, owner_id: uuid.UUID, subject_id: uuid.UUID, job: NewJob
) -> tuple[uuid.UUID, bool]:
    """The id of the subject's erasure job and whether this call queued it (asking again while one is
    pending answers with the same job). ``job`` is accepted with its erasure row in one statement.
    NotFound for a subject that is not the owner's; IdempotencyKeyTaken when ``job``'s key was used first.
    """
    async with engine.begin() as conn:
        job_id = await accept_erasure(conn, owner_id, subject_id, job)
    if job_id is None:
        raise IdempotencyKeyTaken()
    return job_id, job_id == job.id


def erasure_job(owner_id: uuid.UUID, subject_id: uuid.UUID, *, max_attempts: int) -> NewJob:
    """The job that erases a subject."""
    return NewJob(
        owner_id=owner_id, kind=ERASURE_KIND, payload={"subject_id": str(subject_id)}, max_attempts=max_attempts
    )
