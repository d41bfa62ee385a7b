"""Request and response models of /v1/subjects and their photos."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.api.schemas import Page
from orchestrator.db.models import Photo
from orchestrator.training.subject_queries import SubjectView
from trainer.dataset import CaptionError, SubjectKind, check_trigger_word


class ConsentIn(BaseModel):
    """The caller's attestations about the subject. A person subject needs both to be true."""

    model_config = ConfigDict(extra="forbid")

    confirmed: bool = Field(description="The person agreed to a LoRA being trained on their likeness.")
    subject_is_adult: bool = Field(description="The person is an adult.")
    statement: str | None = Field(None, max_length=2000, description="Free text: how and when consent was given.")


class SubjectCreate(BaseModel):
    """A person, style, product or character to train LoRAs on."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100, description="Unique among your subjects.")
    kind: SubjectKind = Field(description="person | style | product | character.")
    trigger_word: str = Field(description="The token that calls the subject up in prompts: 2-40 letters/digits/_/-.")
    class_word: str | None = Field(
        None, min_length=1, max_length=50, description="What the subject is (woman, sneaker); default: the kind."
    )
    consent: ConsentIn | None = Field(None, description="Required for a person (both attestations true).")

    @field_validator("trigger_word")
    @classmethod
    def _trigger(cls, value: str) -> str:
        try:
            return check_trigger_word(value)
        except CaptionError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("name", "class_word")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("must be a single line")
        return value


class ErasureInfo(BaseModel):
    """An erasure that was requested and has not finished yet."""

    job_id: uuid.UUID | None = Field(description="The erasure job (events at /v1/jobs/{id}/events).")
    requested_at: datetime


class SubjectOut(BaseModel):
    """A subject as clients see it."""

    id: uuid.UUID
    name: str
    kind: SubjectKind
    trigger_word: str
    class_word: str | None = None
    consent: dict[str, Any] = Field(description="The stored consent record: attestations, who, when.")
    consent_sha256: str = Field(description="SHA-256 of the record's canonical JSON (in every LoRA's metadata).")
    photo_count: int = Field(description="Accepted photos.")
    created_at: datetime
    erasure: ErasureInfo | None = Field(None, description="Set while the subject is being erased.")

    @classmethod
    def of(cls, view: SubjectView) -> SubjectOut:
        """From a subject row and its counts."""
        s = view.subject
        erasure = None
        if view.erasure is not None:
            erasure = ErasureInfo(job_id=view.erasure.job_id, requested_at=view.erasure.requested_at)
        return cls(
            id=s.id,
            name=s.name,
            kind=SubjectKind(s.kind),
            trigger_word=s.trigger_word,
            class_word=s.class_word,
            consent=s.consent,
            consent_sha256=s.consent_sha256,
            photo_count=view.photo_count,
            created_at=s.created_at,
            erasure=erasure,
        )


class SubjectList(Page[SubjectOut]):
    """A page of subjects, newest first."""


class PhotoOut(BaseModel):
    """An accepted photo (cleaned: EXIF orientation applied, metadata stripped) or one awaiting upload."""

    id: uuid.UUID
    subject_id: uuid.UUID
    status: str = Field(description="accepted | awaiting_upload.")
    original_filename: str | None = None
    content_type: str | None = None
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    phash: str | None = Field(None, description="64-bit perceptual hash (hex) used to catch duplicates.")
    blur_score: float | None = Field(None, description="Sharpness (variance of the Laplacian); higher is sharper.")
    face_box: list[int] | None = Field(None, description="[left, top, right, bottom] of the largest face found.")
    caption: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, photo: Photo) -> PhotoOut:
        """From a photos row."""
        return cls.model_validate(photo, from_attributes=True)


class PhotoList(BaseModel):
    """A subject's photos, oldest first."""

    items: list[PhotoOut]


class PhotoVerdictOut(BaseModel):
    """What became of one uploaded file."""

    filename: str
    accepted: bool
    photo_id: uuid.UUID | None = Field(None, description="The new photo's id when accepted.")
    reason: str | None = Field(
        None,
        description="When rejected: not_an_image, truncated, too_small, too_large, too_many_pixels, duplicate, "
        "no_face, too_blurry, too_many_photos, explicit_content (a person's photo the content policy refused); "
        "not_uploaded for a presigned upload that has not arrived.",
    )
    message: str
    duplicate_of: uuid.UUID | None = Field(None, description="The earlier photo this one duplicates.")
    width: int | None = None
    height: int | None = None


class PhotoUploadResult(BaseModel):
    """One verdict per uploaded file, in upload order."""

    accepted: int
    rejected: int
    verdicts: list[PhotoVerdictOut]


class PresignFile(BaseModel):
    """A file the client is about to upload straight to storage."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(pattern=r"^image/(jpeg|png|webp)$", description="image/jpeg, image/png or image/webp.")
    size_bytes: int = Field(gt=0, le=2**31 - 1, description="The file's size; at most ATELIER_PHOTO_MAX_BYTES.")


class PresignRequest(BaseModel):
    """Ask for presigned PUT URLs (S3 storage only)."""

    model_config = ConfigDict(extra="forbid")

    files: list[PresignFile] = Field(min_length=1, max_length=50)


class PresignedUpload(BaseModel):
    """Where to PUT one file (send the same Content-Type), and the photo id to complete it with."""

    photo_id: uuid.UUID
    filename: str
    url: str
    method: str = "PUT"
    headers: dict[str, str]


class PresignResult(BaseModel):
    """One presigned upload per requested file."""

    uploads: list[PresignedUpload]
    expires_in_s: int


class CompleteRequest(BaseModel):
    """The presigned uploads that have finished: they are checked now, like multipart uploads."""

    model_config = ConfigDict(extra="forbid")

    photo_ids: list[uuid.UUID] = Field(min_length=1, max_length=50)
