"""Subject kinds and the limits that photo checks and dataset preparation enforce."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SubjectKind(StrEnum):
    """What a LoRA is trained to reproduce."""

    PERSON = "person"
    STYLE = "style"
    PRODUCT = "product"
    CHARACTER = "character"


@dataclass(frozen=True)
class DatasetLimits:
    """Every threshold of the photo checks and of dataset preparation, in one place.

    ``max_pixels`` guards against decompression bombs: it is checked against the dimensions in the file
    header before any pixel is decoded. ``blur_threshold`` is the variance of the Laplacian measured on the
    grey image scaled so that its longer side is ``analysis_side`` pixels (so it does not depend on the
    photo's resolution); keep ``max_pixels`` under Pillow's own ``Image.MAX_IMAGE_PIXELS`` (about 89 MP),
    above which Pillow warns while decoding. ``duplicate_distance`` is the largest Hamming distance between two 64-bit
    perceptual hashes that still counts as the same photo.
    """

    min_side: int = 256
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    blur_threshold: float = 40.0
    duplicate_distance: int = 6
    min_photos: int = 1
    max_photos: int = 50
    analysis_side: int = 512
    face_margin: float = 0.8
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        checks = {
            "min_side": self.min_side >= 1,
            "max_bytes": self.max_bytes >= 1,
            "max_pixels": self.max_pixels >= 1,
            "blur_threshold": self.blur_threshold >= 0,
            "duplicate_distance": 0 <= self.duplicate_distance <= 64,
            "min_photos": 1 <= self.min_photos <= self.max_photos,
            "max_photos": self.max_photos >= 1,
            "analysis_side": self.analysis_side >= 64,
            "face_margin": self.face_margin >= 0,
            "jpeg_quality": 1 <= self.jpeg_quality <= 100,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid dataset limits: {', '.join(bad)}")


DEFAULT_LIMITS = DatasetLimits()
