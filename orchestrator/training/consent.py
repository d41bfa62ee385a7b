"""The consent record of a subject: what was attested, by whom and when, and the hash that pins it.

The record is stored with the subject; its SHA-256 over canonical JSON goes into the provenance metadata
of every LoRA trained on the subject, so a LoRA file can be traced to the attestation it was made under.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from orchestrator.training.hashing import canonical_sha256
from trainer.dataset import SubjectKind

CONSENT_VERSION = 1


def consent_problems(kind: SubjectKind, confirmed: bool | None, adult: bool | None) -> list[dict[str, str]]:
    """Field errors for a consent that does not allow training on this subject (people need both)."""
    if kind is not SubjectKind.PERSON:
        return []
    errors = []
    if confirmed is not True:
        errors.append({"field": "consent.confirmed", "reason": "a person subject needs the person's confirmed consent"})
    if adult is not True:
        errors.append(
            {"field": "consent.subject_is_adult", "reason": "a person subject must be attested to be an adult"}
        )
    return errors


def consent_record(
    *,
    subject: dict[str, Any],
    confirmed: bool,
    subject_is_adult: bool,
    statement: str | None,
    owner_id: uuid.UUID,
    key_id: uuid.UUID | None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """The stored record and its SHA-256: attestations, the subject they cover, who and when."""
    record = {
        "version": CONSENT_VERSION,
        "confirmed": confirmed,
        "subject_is_adult": subject_is_adult,
        "statement": statement,
        "subject": subject,
        "recorded_by": {"owner_id": str(owner_id), "api_key_id": str(key_id) if key_id else None},
        "recorded_at": (now or datetime.now(UTC)).isoformat(),
    }
    return record, canonical_sha256(record)
