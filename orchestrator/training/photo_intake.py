"""Photo intake: check uploaded files off the event loop, in upload order, and store the accepted ones.

Files arrive as :class:`IncomingFile` (the handler streams them from a multipart body; a file over
``ATELIER_PHOTO_MAX_BYTES`` arrives as its size only and gets a ``too_large`` verdict). Checks run in a worker
thread, one file at a time and in upload order (duplicates are decided in that order), while the next
file streams in. Accepted photos are stored cleaned (EXIF orientation applied, every metadata block
dropped: :mod:`trainer.dataset.images`); their rows are written together at the end. When anything
fails half-way, the objects already stored are removed again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.db.models import Photo, Subject
from orchestrator.policy import ContentPolicy, Context, ImageDecision
from orchestrator.storage import Storage
from orchestrator.training.subject_schemas import PhotoUploadResult, PhotoVerdictOut
from trainer.dataset import (
    CheckedPhoto,
    DatasetLimits,
    FaceDetector,
    PhotoChecker,
    PhotoVerdict,
    RejectReason,
    SubjectKind,
)
from trainer.dataset.dedupe import Fingerprint
from trainer.dataset.probe import ImageFormat

log = logging.getLogger(__name__)

CONTENT_TYPES = {ImageFormat.JPEG: "image/jpeg", ImageFormat.PNG: "image/png", ImageFormat.WEBP: "image/webp"}
EXTENSIONS = {ImageFormat.JPEG: "jpg", ImageFormat.PNG: "png", ImageFormat.WEBP: "webp"}


@dataclass(frozen=True)
class IncomingFile:
    """One uploaded file: its bytes, or only its size when it was over the limit."""

    filename: str
    data: bytes | None
    size: int


def photo_key(subject_id: uuid.UUID, photo_id: uuid.UUID, fmt: ImageFormat) -> str:
    """The storage key of an accepted (cleaned) photo."""
    return f"subjects/{subject_id}/photos/{photo_id}.{EXTENSIONS[fmt]}"


def subject_prefix(subject_id: uuid.UUID) -> str:
    """Every object of a subject (photos, pending uploads) lives under this prefix."""
    return f"subjects/{subject_id}"


def rejected(incoming: IncomingFile, photo_id: uuid.UUID, reason: RejectReason, message: str) -> PhotoVerdict:
    """A verdict decided without looking at the pixels."""
    return PhotoVerdict(incoming.filename, str(photo_id), reason, message)


@dataclass
class PhotoIntake:
    """Checks and stores the photos of one upload request for one subject."""

    subject: Subject
    storage: Storage
    limits: DatasetLimits
    detector: FaceDetector
    existing: Mapping[str, Fingerprint]  # accepted photo id -> its duplicate-check fingerprint
    policy: ContentPolicy | None = None  # screens a person's photos for explicit content
    explicit: list[tuple[str, ImageDecision]] = field(default_factory=list)  # (filename, decision)
    stored_keys: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[PhotoVerdictOut] = field(default_factory=list)
    seen: int = 0

    def __post_init__(self) -> None:
        kind = SubjectKind(self.subject.kind)
        self._checker = PhotoChecker(kind, limits=self.limits, accepted=self.existing, detector=self.detector)

    def check_later(self, incoming: IncomingFile, photo_id: uuid.UUID | None = None) -> asyncio.Future[PhotoVerdict]:
        """Start checking a file in a thread (or decide at once when its size already says no)."""
        photo_id = photo_id or uuid.uuid4()
        self.seen += 1
        loop = asyncio.get_running_loop()
        if incoming.data is None:
            limit = self.limits.max_bytes
            verdict = rejected(
                incoming, photo_id, RejectReason.TOO_LARGE, f"file is {incoming.size} bytes; the limit is {limit}"
            )
        elif self.seen > self.limits.max_photos:  # more files than a subject may hold: not even checked
            max_photos = self.limits.max_photos
            verdict = rejected(
                incoming, photo_id, RejectReason.TOO_MANY_PHOTOS, f"a subject has at most {max_photos} photos"
            )
        else:
            return loop.run_in_executor(None, self._check, incoming.data, incoming.filename, str(photo_id), self.seen)
        future: asyncio.Future[PhotoVerdict] = loop.create_future()
        future.set_result(verdict)
        return future

    def _check(self, data: bytes, filename: str, photo_id: str, position: int) -> PhotoVerdict:
        """The photo checks, then (a person's accepted photo) the content policy's screening of the cleaned
        image: an explicit one is refused with ``explicit_content`` and never stored."""
        verdict = self._checker.check(data, filename, photo_id)
        if verdict.photo is None or self.policy is None or SubjectKind(self.subject.kind) is not SubjectKind.PERSON:
            return verdict
        image = verdict.photo.image
        screened = self.policy.screen_now([image.data])[0]
        if not screened.explicit:
            return verdict
        self._checker.forget(photo_id)
        self.explicit.append((filename, ImageDecision(position - 1, screened, image.sha256)))
        message = "the photo looks sexually explicit; photos of a person must not be (it was not stored)"
        return PhotoVerdict(filename, photo_id, RejectReason.EXPLICIT_CONTENT, message)

    async def record_explicit(self, owner_id: uuid.UUID, request_id: uuid.UUID) -> None:
        """Put the refused explicit photos in the audit log."""
        if self.policy is None:
            return
        for filename, decision in self.explicit:
            detail = {"subject_id": str(self.subject.id), "filename": filename[:255]}
            await self.policy.record_images(
                [decision], action="rejected", context=Context.TRAINING_PHOTO, owner_id=owner_id,
                request_id=request_id, detail=detail,
            )  # fmt: skip

    async def settle(self, verdict: PhotoVerdict) -> None:
        """Store an accepted photo and remember its row; record the verdict either way."""
        out = PhotoVerdictOut(
            filename=verdict.filename,
            accepted=verdict.accepted,
            reason=verdict.reason.value if verdict.reason else None,
            message=verdict.message,
            duplicate_of=uuid.UUID(verdict.duplicate_of) if verdict.duplicate_of else None,
        )
        if verdict.photo is not None:
            photo_id = uuid.UUID(verdict.photo_id)
            image = verdict.photo.image
            key = photo_key(self.subject.id, photo_id, image.format)
            await self.storage.put(key, image.data, CONTENT_TYPES[image.format])
            self.stored_keys.append(key)
            self.rows.append(self._row(photo_id, key, verdict.filename, verdict.photo))
            out.photo_id, out.width, out.height = photo_id, image.width, image.height
        self.verdicts.append(out)

    def _row(self, photo_id: uuid.UUID, key: str, filename: str, checked: CheckedPhoto) -> dict[str, Any]:
        return {
            "id": photo_id,
            "subject_id": self.subject.id,
            "owner_id": self.subject.owner_id,
            "status": "accepted",
            "storage_key": key,
            "original_filename": filename[:255] or None,
            "content_type": CONTENT_TYPES[checked.image.format],
            "width": checked.image.width,
            "height": checked.image.height,
            "size_bytes": len(checked.image.data),
            "sha256": checked.image.sha256,
            "phash": checked.phash,
            "fingerprint": checked.fingerprint.to_bytes(),
            "blur_score": checked.blur_score,
            "face_box": checked.face_box.as_list() if checked.face_box else None,
        }

    def not_uploaded(self, filename: str) -> None:
        """A presigned upload that has not arrived in storage (yet)."""
        message = "nothing was uploaded to the presigned URL yet; upload it, then complete again"
        self.verdicts.append(PhotoVerdictOut(filename=filename, accepted=False, reason="not_uploaded", message=message))

    async def discard(self) -> None:
        """Remove what was stored (the request failed before its rows were written)."""
        for key in self.stored_keys:
            try:
                await self.storage.delete(key)
            except Exception:
                log.exception("could not remove %s after a failed upload", key)

    def result(self) -> PhotoUploadResult:
        """The answer: one verdict per file."""
        accepted = sum(1 for v in self.verdicts if v.accepted)
        return PhotoUploadResult(accepted=accepted, rejected=len(self.verdicts) - accepted, verdicts=self.verdicts)


async def take_uploads(intake: PhotoIntake, files: AsyncIterator[IncomingFile]) -> None:
    """Check each file while the next one streams in; settle verdicts in upload order."""
    pending: asyncio.Future[PhotoVerdict] | None = None
    try:
        async for incoming in files:
            if pending is not None:
                await intake.settle(await pending)
            pending = intake.check_later(incoming)
        if pending is not None:
            await intake.settle(await pending)
            pending = None
    finally:
        if pending is not None and not pending.done():
            await asyncio.wait([pending])  # let the thread finish before the request's memory goes


def existing_fingerprints(photos: list[Photo]) -> dict[str, Fingerprint]:
    """Accepted photos' fingerprints by id, for duplicate checks across requests (the perceptual hash only
    for photos stored before fingerprints, or whose fingerprint cannot be read).
    """
    out = {}
    for photo in photos:
        if photo.fingerprint:
            try:
                out[str(photo.id)] = Fingerprint.from_bytes(photo.fingerprint)
                continue
            except ValueError:
                log.warning("photo %s has an unreadable fingerprint; its hash alone is compared", photo.id)
        if photo.phash:
            out[str(photo.id)] = Fingerprint.hash_only(photo.phash)
    return out
