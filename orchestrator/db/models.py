"""SQLAlchemy 2 models. The alembic migrations under ``migrations/`` create the same schema."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


class Base(DeclarativeBase):
    """Declarative base of every table."""


def _now_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Owner(Base):
    """Someone who owns jobs, subjects and LoRAs; API keys belong to one owner."""

    __tablename__ = "owners"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    created_at: Mapped[datetime] = _now_column()


class ApiKey(Base):
    """A bearer key, stored as a SHA-256 hash; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), nullable=False, index=True)
    prefix: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    key_hash: Mapped[str] = mapped_column(Text, nullable=False)
    admin: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    adult_content: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_at: Mapped[datetime] = _now_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """One unit of work (noop, generation, training, erasure) and its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued','running','succeeded','failed','cancelled')", name="jobs_status_valid"),
        Index(
            "jobs_claim_order",
            "kind",
            text("priority DESC"),
            "created_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index("jobs_running_heartbeat", "heartbeat_at", postgresql_where=text("status = 'running'")),
        Index("jobs_owner_listing", "owner_id", "kind", text("created_at DESC")),
        Index(
            "jobs_owner_slots",
            "owner_id",
            "owner_slot",
            unique=True,
            postgresql_where=text("status = 'running' AND owner_slot IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="queued")
    priority: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="0")
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="3")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    worker_id: Mapped[str | None] = mapped_column(Text)
    backend: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    #: What the job needs loaded on its backend (checkpoint + LoRA set), for the scheduler's affinity.
    affinity_key: Mapped[str | None] = mapped_column(Text)
    #: When a job behind it was first dispatched ahead of it for affinity (its wait is bounded from then).
    passed_over_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: While running: which of its owner's numbered slots it holds (unique per owner: exact caps).
    owner_slot: Mapped[int | None] = mapped_column(SmallInteger)
    run_after: Mapped[datetime] = _now_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _now_column()


class OwnerShare(Base):
    """An owner's weight and virtual time in the scheduler's weighted fair queuing (a row once it matters)."""

    __tablename__ = "owner_shares"
    __table_args__ = (CheckConstraint("weight > 0", name="owner_shares_weight_positive"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), primary_key=True)
    vtime: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))
    weight: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("1"))


class FairClock(Base):
    """The fair queuing's virtual clock: one row, monotone."""

    __tablename__ = "fair_clock"
    __table_args__ = (CheckConstraint("id", name="fair_clock_one_row"),)

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    vtime: Mapped[float] = mapped_column(Float, nullable=False, server_default=text("0"))


class JobEvent(Base):
    """An append-only record of what happened to a job; ``id`` is the SSE event id.

    ``id`` comes from ``atelier_next_event_id()``, which assigns the writing transaction its xid
    before taking the sequence value; the event feed relies on that to tell a gap that is still
    being written from one that will never be filled (see :mod:`orchestrator.events.feed`).
    """

    __tablename__ = "job_events"
    __table_args__ = (
        Index("job_events_by_job", "job_id", "id"),
        Index("job_events_by_owner", "owner_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, server_default=text("atelier_next_event_id()"))
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _now_column()


class GenerationImage(Base):
    """One image a generation produced, kept in storage."""

    __tablename__ = "generation_images"
    __table_args__ = (
        UniqueConstraint("job_id", "index", name="generation_images_job_index"),
        Index("generation_images_pending", "created_at", postgresql_where=text("pending_data IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    storage_key: Mapped[str] = mapped_column(Text, nullable=False)
    content_type: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(Text, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[Decimal | None] = mapped_column(Numeric(20, 0))  # ComfyUI seeds reach 2**64 - 1
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    loras: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    #: The image's bytes until storage holds them durably (see orchestrator.generation.pending_images).
    pending_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _now_column()


class Subject(Base):
    """A person, style, product or character that LoRAs are trained on; people carry a consent record."""

    __tablename__ = "subjects"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="subjects_owner_name"),
        CheckConstraint("kind IN ('person','style','product','character')", name="subjects_kind_valid"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    trigger_word: Mapped[str] = mapped_column(Text, nullable=False)
    class_word: Mapped[str | None] = mapped_column(Text)
    consent: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    consent_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _now_column()


class Photo(Base):
    """An accepted photo of a subject (cleaned of metadata) or one awaiting its presigned upload."""

    __tablename__ = "photos"
    __table_args__ = (
        CheckConstraint("status IN ('accepted','awaiting_upload')", name="photos_status_valid"),
        Index("photos_by_subject", "subject_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="accepted")
    storage_key: Mapped[str] = mapped_column(Text, nullable=False)
    original_filename: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(Text)
    phash: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)  # trainer.dataset.dedupe.Fingerprint
    blur_score: Mapped[float | None] = mapped_column(Float)
    face_box: Mapped[list[int] | None] = mapped_column(JSONB)
    caption: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()


class TrainingRun(Base):
    """Where a training job's sd-scripts run lives, so a restart can find and end an orphaned one."""

    __tablename__ = "training_runs"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    subject_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False)
    run_dir: Mapped[str] = mapped_column(Text, nullable=False)
    host: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    pgid: Mapped[int | None] = mapped_column(Integer)
    last_step: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    state_dir: Mapped[str | None] = mapped_column(Text)
    dataset_manifest: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    manifest_sha256: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _now_column()


class Lora(Base):
    """A named LoRA of a subject; its files are its versions."""

    __tablename__ = "loras"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="loras_owner_name"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), nullable=False)
    subject_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text, nullable=False)
    base_family: Mapped[str] = mapped_column(Text, nullable=False)
    trigger_word: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()


class LoraVersion(Base):
    """One trained LoRA file: in storage, in the models store (``comfy_name``), with provenance."""

    __tablename__ = "lora_versions"
    __table_args__ = (UniqueConstraint("lora_id", "version", name="lora_versions_lora_version"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    lora_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("loras.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    training_job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    storage_key: Mapped[str] = mapped_column(Text, nullable=False)
    comfy_name: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(Text, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    base_model: Mapped[str] = mapped_column(Text, nullable=False)
    base_model_sha256: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, nullable=False)
    created_at: Mapped[datetime] = _now_column()


class Erasure(Base):
    """The audit record that outlives an erased subject: what was removed, when, for whom."""

    __tablename__ = "erasures"
    __table_args__ = (
        Index("erasures_one_open", "subject_id", unique=True, postgresql_where=text("completed_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    subject_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL", name="erasures_job_id_fkey", deferrable=True, initially="DEFERRED")
    )
    requested_at: Mapped[datetime] = _now_column()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class WebhookDelivery(Base):
    """A job's terminal state to POST to its ``webhook_url``; written by a trigger, sent by a dispatcher."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending','delivered','failed')", name="webhook_deliveries_status_valid"),
        Index("webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("webhook_deliveries_job", "job_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    job_status: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = _now_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the Standard Webhooks ``webhook-id``: the same for every attempt and every redelivery of one message
    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), nullable=False, server_default=func.gen_random_uuid()
    )
    redelivery_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="SET NULL", name="webhook_deliveries_redelivery_of_fkey")
    )


class WebhookSecret(Base):
    """An owner's webhook signing secret (``whsec_``); a rotated one stays valid until ``expires_at``."""

    __tablename__ = "webhook_secrets"
    __table_args__ = (
        CheckConstraint("secret LIKE 'whsec_%'", name="webhook_secrets_format"),
        Index("webhook_secrets_current", "owner_id", unique=True, postgresql_where=text("expires_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid())
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), nullable=False)
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = _now_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SavedTemplate(Base):
    """A template an owner registered from a graph edited in ComfyUI (``comfy_workflows.registration``)."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("owner_id", "name", name="templates_owner_name"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _now_column()
    updated_at: Mapped[datetime] = _now_column()


class AuditEvent(Base):
    """One decision of the content policy: a refused request or a blocked (or blurred) image.

    For the minors rule only ``content_sha256`` of the text is kept, never the text; ``excerpt`` is kept for
    the other rules. ``job_id`` has no foreign key: the record outlives a deleted generation.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("audit_events_listing", text("created_at DESC"), text("id DESC")),
        Index("audit_events_owner", "owner_id", text("created_at DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = _now_column()
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("owners.id", ondelete="SET NULL"))
    key_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    request_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    action: Mapped[str] = mapped_column(Text, nullable=False)
    rule: Mapped[str] = mapped_column(Text, nullable=False)
    context: Mapped[str] = mapped_column(Text, nullable=False)
    fields: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    content_sha256: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))


class IdempotencyKey(Base):
    """The first answer to a job-creating request sent with an ``Idempotency-Key`` (kept 24 hours)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("idempotency_keys_created", "created_at"),)

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_sha256: Mapped[str] = mapped_column(Text, nullable=False)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(
            "jobs.id", ondelete="SET NULL", name="idempotency_keys_job_id_fkey", deferrable=True, initially="DEFERRED"
        )
    )
    status: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _now_column()
