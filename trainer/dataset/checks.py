"""The per-photo verdict for an upload: accepted (with the cleaned image) or a reason code and message."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from trainer.dataset.dedupe import Fingerprint, find_duplicate
from trainer.dataset.faces import Box, FaceDetector
from trainer.dataset.images import DecodeError, EncodedImage, analyse, decode_upright_rgb, encode_clean, rgb_array
from trainer.dataset.limits import DEFAULT_LIMITS, DatasetLimits, SubjectKind
from trainer.dataset.probe import ImageHeader, probe_image


class RejectReason(StrEnum):
    """Why a photo was not accepted."""

    NOT_AN_IMAGE = "not_an_image"
    TRUNCATED = "truncated"
    TOO_SMALL = "too_small"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    DUPLICATE = "duplicate"
    NO_FACE = "no_face"
    TOO_BLURRY = "too_blurry"
    TOO_MANY_PHOTOS = "too_many_photos"
    EXPLICIT_CONTENT = "explicit_content"  # decided by the service's content policy, after these checks


@dataclass(frozen=True)
class CheckedPhoto:
    """An accepted photo: the cleaned image to store and what the checks measured on it."""

    image: EncodedImage
    phash: str
    blur_score: float
    face_box: Box | None
    fingerprint: Fingerprint


@dataclass(frozen=True)
class PhotoVerdict:
    """Accepted (``photo`` set) or rejected (``reason`` set); ``message`` is for people either way."""

    filename: str
    photo_id: str
    reason: RejectReason | None
    message: str
    photo: CheckedPhoto | None = None
    duplicate_of: str | None = None

    @property
    def accepted(self) -> bool:
        """True when the photo passed every check."""
        return self.reason is None

    def to_dict(self) -> dict[str, object]:
        """The JSON form used in API answers (without the image bytes)."""
        out: dict[str, object] = {
            "filename": self.filename,
            "photo_id": self.photo_id,
            "accepted": self.accepted,
            "reason": None if self.reason is None else self.reason.value,
            "message": self.message,
        }
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        if self.photo is not None:
            out.update(
                format=self.photo.image.format.value,
                width=self.photo.image.width,
                height=self.photo.image.height,
                size=len(self.photo.image.data),
                sha256=self.photo.image.sha256,
                phash=self.photo.phash,
            )
        return out


class _Rejected(Exception):
    def __init__(
        self,
        reason: RejectReason,
        message: str,
        duplicate_of: str | None = None,
        fingerprint: Fingerprint | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.duplicate_of = duplicate_of
        self.fingerprint = fingerprint  # set when the pixels were read: a duplicate is said before the rest


class PhotoChecker:
    """Checks the uploads of one subject, remembering accepted photos so that later duplicates are caught.

    ``accepted`` maps the ids of photos accepted earlier (for example loaded from the database) to their
    fingerprints (:class:`~trainer.dataset.dedupe.Fingerprint`), or only their perceptual hashes (hex, as
    in :attr:`CheckedPhoto.phash`) for photos stored before fingerprints existed. Duplicates are copies
    that are turned, mirrored, cropped, slightly rotated or re-saved (:mod:`trainer.dataset.dedupe`).
    Not thread-safe: use one checker per upload request, or guard it.
    """

    def __init__(
        self,
        kind: SubjectKind,
        *,
        limits: DatasetLimits = DEFAULT_LIMITS,
        accepted: Mapping[str, Fingerprint | str] | None = None,
        detector: FaceDetector | None = None,
    ) -> None:
        self.kind = kind
        self.limits = limits
        self._accepted = {
            pid: Fingerprint.hash_only(fp) if isinstance(fp, str) else fp for pid, fp in (accepted or {}).items()
        }
        self._detector = detector if detector is not None or kind is not SubjectKind.PERSON else FaceDetector()

    @property
    def accepted_count(self) -> int:
        """How many photos the subject has, counting earlier ones."""
        return len(self._accepted)

    def check(self, data: bytes, filename: str, photo_id: str) -> PhotoVerdict:
        """Check one upload; when accepted, it is remembered under ``photo_id`` for duplicate checks."""
        return self._decide(self._measure(data), filename, photo_id)

    def forget(self, photo_id: str) -> None:
        """Stop counting an accepted photo (for duplicates and the photo limit): a later check refused it."""
        self._accepted.pop(photo_id, None)

    def check_many(self, uploads: Sequence[Upload], *, workers: int = 2) -> list[PhotoVerdict]:
        """Check several uploads, measuring them in ``workers`` threads; verdicts come in input order.

        Duplicates are decided in input order, so of two copies in one batch the first is accepted.
        """
        if workers <= 1 or len(uploads) <= 1:
            return [self.check(u.data, u.filename, u.photo_id) for u in uploads]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            measured = list(pool.map(lambda upload: self._measure(upload.data), uploads))
        return [self._decide(m, u.filename, u.photo_id) for m, u in zip(measured, uploads, strict=True)]

    def _measure(self, data: bytes) -> CheckedPhoto | _Rejected:
        try:
            return measure_photo(data, kind=self.kind, limits=self.limits, detector=self._detector)
        except _Rejected as rejected:
            return rejected

    def _decide(self, measured: CheckedPhoto | _Rejected, filename: str, photo_id: str) -> PhotoVerdict:
        try:
            if isinstance(measured, _Rejected):
                if measured.fingerprint is not None:  # a sideways copy has "no face": "duplicate" says more
                    self._reject_duplicate(measured.fingerprint)
                raise measured
            if len(self._accepted) >= self.limits.max_photos:
                raise _Rejected(RejectReason.TOO_MANY_PHOTOS, f"a subject has at most {self.limits.max_photos} photos")
            self._reject_duplicate(measured.fingerprint)
        except _Rejected as rejected:
            return PhotoVerdict(filename, photo_id, rejected.reason, rejected.message, None, rejected.duplicate_of)
        self._accepted[photo_id] = measured.fingerprint
        size = f"{measured.image.width}x{measured.image.height}"
        return PhotoVerdict(filename, photo_id, None, f"accepted ({size})", measured)

    def _reject_duplicate(self, fingerprint: Fingerprint) -> None:
        found = find_duplicate(fingerprint, self._accepted, hash_distance=self.limits.duplicate_distance)
        if found is not None:
            photo_id, match = found
            how = match.describe()
            message = f"duplicate of photo {photo_id}" + (f" ({how})" if how else "")
            raise _Rejected(RejectReason.DUPLICATE, message, duplicate_of=photo_id)


@dataclass(frozen=True)
class Upload:
    """One uploaded file for :meth:`PhotoChecker.check_many`."""

    data: bytes
    filename: str
    photo_id: str


def _check_header(data: bytes, limits: DatasetLimits) -> ImageHeader:
    if len(data) > limits.max_bytes:
        raise _Rejected(RejectReason.TOO_LARGE, f"file is {len(data)} bytes; the limit is {limits.max_bytes} bytes")
    header = probe_image(data)
    if header is None:
        raise _Rejected(RejectReason.NOT_AN_IMAGE, "not a JPEG, PNG or WebP image")
    if not header.complete:
        raise _Rejected(RejectReason.TRUNCATED, f"the {header.format.value} header is cut short")
    if header.pixels > limits.max_pixels:
        raise _Rejected(
            RejectReason.TOO_MANY_PIXELS,
            f"{header.width}x{header.height} is {header.pixels} pixels; the limit is {limits.max_pixels}",
        )
    if min(header.width, header.height) < limits.min_side:
        raise _Rejected(
            RejectReason.TOO_SMALL,
            f"{header.width}x{header.height}: the shorter side must be at least {limits.min_side} px",
        )
    return header


def measure_photo(
    data: bytes, *, kind: SubjectKind, limits: DatasetLimits, detector: FaceDetector | None
) -> CheckedPhoto:
    """Every check that does not depend on other photos; raises ``_Rejected``. Thread-safe.

    Order: byte size, header (format, pixel count, shorter side; nothing decoded yet), decode and the
    duplicate-check fingerprint, sharpness, face (people only), then the metadata-free re-encode.
    """
    header = _check_header(data, limits)
    try:
        image = decode_upright_rgb(data)
    except DecodeError as exc:
        raise _Rejected(RejectReason.TRUNCATED, f"the image data is cut short or corrupt: {exc}") from exc
    pixels = rgb_array(image)
    analysis = analyse(pixels, limits.analysis_side)
    fingerprint = Fingerprint.of(analysis.grey, pixels)
    blur = analysis.blur_score()
    if blur < limits.blur_threshold:
        message = f"too blurry (sharpness {blur:.1f}, needs {limits.blur_threshold:.1f})"
        raise _Rejected(RejectReason.TOO_BLURRY, message, fingerprint=fingerprint)
    face = None
    if detector is not None:
        face = detector.largest_face(analysis)
        if face is None and kind is SubjectKind.PERSON:
            message = "no face found; use photos that show the face clearly"
            raise _Rejected(RejectReason.NO_FACE, message, fingerprint=fingerprint)
    encoded = encode_clean(image, header.format, jpeg_quality=limits.jpeg_quality)
    return CheckedPhoto(encoded, str(fingerprint.phash), blur, face, fingerprint)


def check_photo(
    data: bytes,
    filename: str,
    *,
    kind: SubjectKind,
    photo_id: str = "",
    accepted: Mapping[str, Fingerprint | str] | None = None,
    limits: DatasetLimits = DEFAULT_LIMITS,
    detector: FaceDetector | None = None,
) -> PhotoVerdict:
    """One-off check of a single upload against the subject's ``accepted`` photos (id -> fingerprint or hash)."""
    checker = PhotoChecker(kind, limits=limits, accepted=accepted, detector=detector)
    return checker.check(data, filename, photo_id or filename)
