"""Checks a training request before it is queued and turns it into the job's payload.

Everything that would make the run fail for a reason known now is refused here, with the field named:
the subject (yours, not being erased, with consent that allows training and at least one accepted photo),
captions (for photos it does not have, a mode this service cannot honour: :mod:`.caption_choice`), the
LoRA name (not another subject's), the base model (in the store, of a family we can train), the
parameters (as sd-scripts would see them) and the service's own set-up.
Nothing is written until all of it passed; then the job row and its event are one statement.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.db.models import Lora, Subject
from orchestrator.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from orchestrator.policy import ContentGate
from orchestrator.training.base_models import UnknownBaseModel, checkpoint_path, detect_family
from orchestrator.training.caption_choice import decide_captions
from orchestrator.training.consent import consent_problems
from orchestrator.training.content import training_fields
from orchestrator.training.planning import plan_training
from orchestrator.training.subject_queries import list_photos, writable_subject
from orchestrator.training.training_schemas import TrainingCreate, TrainingPayload
from orchestrator.training.training_services import TrainingServices
from trainer.dataset import SubjectKind


def default_lora_name(subject: Subject) -> str:
    """A registry name from the subject's name: letters, digits, ``.``, ``_`` and ``-`` only."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", subject.name).strip("-._")[:64]
    return slug or f"subject-{str(subject.id)[:8]}"


async def _subject(conn: AsyncConnection, owner_id: uuid.UUID, subject_id: uuid.UUID) -> Subject:
    try:
        subject = await writable_subject(conn, owner_id, subject_id)
    except NotFound as exc:
        raise ValidationFailed([{"field": "subject_id", "reason": "you have no subject with this id"}]) from exc
    record = subject.consent or {}
    problems = consent_problems(SubjectKind(subject.kind), record.get("confirmed"), record.get("subject_is_adult"))
    if problems:
        fields = ", ".join(p["field"] for p in problems)
        raise ValidationFailed(
            [{"field": "subject_id", "reason": f"the subject's consent does not allow training: {fields}"}]
        )
    return subject


async def check_lora_name(conn: AsyncConnection, owner_id: uuid.UUID, name: str, subject_id: uuid.UUID) -> None:
    """409 when the owner's LoRA of this name belongs to another subject."""
    row = (await conn.execute(select(Lora.subject_id).where(Lora.owner_id == owner_id, Lora.name == name))).first()
    if row is not None and row.subject_id != subject_id:
        raise Conflict(
            f"your LoRA {name!r} belongs to another subject",
            extra={"errors": [{"field": "lora_name", "reason": "used by a LoRA of another subject"}]},
        )


async def _family(services: TrainingServices, body: TrainingCreate) -> str:
    if body.base_family is not None:
        return body.base_family.value
    try:
        path = checkpoint_path(services.models_dir, body.base_model)
    except UnknownBaseModel as exc:
        raise ValidationFailed([{"field": "base_model", "reason": str(exc)}]) from exc
    family = await asyncio.to_thread(detect_family, path)
    if family is None:
        reason = "the checkpoint's tensor names do not say whether it is sd15, sdxl or flux; set base_family"
        raise ValidationFailed([{"field": "base_family", "reason": reason}])
    return family.value


async def build_payload(
    engine: AsyncEngine, services: TrainingServices, owner_id: uuid.UUID, body: TrainingCreate, gate: ContentGate
) -> TrainingPayload:
    """The job payload for an accepted request; raises a problem naming the field otherwise. Every text the
    job carries goes past the content policy (:mod:`orchestrator.training.content`)."""
    if services.install is None:
        raise ServiceUnavailable("training is not configured: set ATELIER_SD_SCRIPTS_DIR and ATELIER_SD_SCRIPTS_PYTHON")
    async with engine.connect() as conn:
        subject = await _subject(conn, owner_id, body.subject_id)
        photos = await list_photos(conn, subject.id)
        if len(photos) < services.limits.min_photos:
            reason = f"the subject has {len(photos)} accepted photos; upload at least {services.limits.min_photos}"
            raise ValidationFailed([{"field": "subject_id", "reason": reason}])
        captions = decide_captions(body.captions, services, photos)
        lora_name = body.lora_name or default_lora_name(subject)
        await gate.check(training_fields(body, subject, photos, lora_name))
        await check_lora_name(conn, owner_id, lora_name, subject.id)
    values = body.model_dump(mode="json", exclude={"base_family", "lora_name"})
    values.update(
        base_family=await _family(services, body),
        lora_name=lora_name,
        photo_ids=[str(p.id) for p in photos],
        captions=captions.model_dump(mode="json"),
    )
    payload = TrainingPayload.model_validate(values)
    plan_training(payload, services, subject.trigger_word)
    return payload
