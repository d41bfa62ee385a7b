"""Crop boxes (face-centred square, centre square, aspect bucket) and the resize to training size."""

from __future__ import annotations

import math
from enum import StrEnum

import cv2
import numpy as np

from trainer.dataset.faces import Box

BUCKET_STEP = 64
"""sd-scripts' default ``bucket_reso_steps``: bucket sides are multiples of this."""


class CropMode(StrEnum):
    """How a photo becomes a training image."""

    FACE = "face"  # square centred on the largest face, with a margin
    CENTER = "center"  # the largest centred square
    BUCKET = "bucket"  # keep the aspect ratio: the nearest sd-scripts-style bucket


def face_square(face: Box, width: int, height: int, *, margin: float, resolution: int) -> Box:
    """A square around ``face`` (``margin`` face sizes on every side), kept inside the image.

    The square is never smaller than the training resolution when the photo is large enough, so that
    small faces are not upscaled more than needed.
    """
    shorter = min(width, height)
    side = max(face.width, face.height) * (1.0 + 2.0 * margin)
    side = min(max(side, min(shorter, resolution)), shorter)
    size = round(side)
    centre_x = face.left + face.width / 2.0
    centre_y = face.top + face.height / 2.0
    left = _clamp(round(centre_x - size / 2.0), 0, width - size)
    top = _clamp(round(centre_y - size / 2.0), 0, height - size)
    return Box(left, top, left + size, top + size)


def centre_square(width: int, height: int) -> Box:
    """The largest square centred in the image."""
    size = min(width, height)
    left = (width - size) // 2
    top = (height - size) // 2
    return Box(left, top, left + size, top + size)


def bucket_size(width: int, height: int, resolution: int, *, min_side: int = 256) -> tuple[int, int]:
    """The bucket (multiples of 64, area at most ``resolution``²) whose aspect ratio is nearest the photo's."""
    area = resolution * resolution
    max_side = min(2 * resolution, 4096)
    target = math.log(width / height)
    best: tuple[float, int, int] | None = None
    for bucket_w in range(BUCKET_STEP, max_side + 1, BUCKET_STEP):
        bucket_h = min(area // bucket_w // BUCKET_STEP * BUCKET_STEP, max_side)
        if bucket_w < min(min_side, resolution) or bucket_h < min(min_side, resolution):
            continue
        error = abs(math.log(bucket_w / bucket_h) - target)
        if best is None or error < best[0] - 1e-9:
            best = (error, bucket_w, bucket_h)
    if best is None:
        return resolution, resolution
    return best[1], best[2]


def aspect_box(width: int, height: int, out_w: int, out_h: int) -> Box:
    """The largest centred box with the aspect ratio ``out_w:out_h``."""
    if width * out_h > height * out_w:  # photo is wider than the bucket
        crop_w, crop_h = round(height * out_w / out_h), height
    else:
        crop_w, crop_h = width, round(width * out_h / out_w)
    left = (width - crop_w) // 2
    top = (height - crop_h) // 2
    return Box(left, top, left + crop_w, top + crop_h)


def plan_crop(
    width: int, height: int, *, mode: CropMode, resolution: int, face: Box | None, margin: float
) -> tuple[Box, tuple[int, int]]:
    """Return the crop box and the output size for one photo (a face crop without a face is centred)."""
    if mode is CropMode.BUCKET:
        out = bucket_size(width, height, resolution)
        return aspect_box(width, height, *out), out
    if mode is CropMode.FACE and face is not None:
        return face_square(face, width, height, margin=margin, resolution=resolution), (resolution, resolution)
    return centre_square(width, height), (resolution, resolution)


def crop_and_resize(pixels: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """Crop ``box`` out of an image array and resample it to ``size`` (area averaging when shrinking)."""
    region = pixels[box.top : box.bottom, box.left : box.right]
    if (box.width, box.height) == size:
        return np.ascontiguousarray(region)
    shrinking = size[0] < box.width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(region, size, interpolation=interpolation)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
