"""The pixel check of duplicate detection: does one photo, moved by a transform, show what the other shows?

Both are compared block by block at half the grey thumbnail's size (8 x 8 blocks there cover 16 x 16
thumbnail pixels, at a quarter of the work). A textured block agrees when its normalised cross-correlation
is high. A smooth block has no structure to correlate, so two smooth blocks agree when their grey level and
their colour match: grey alone let a purple wall and a pink one of the same brightness pass for the same
(two photos of one face on different backgrounds were called copies in bench_dataset_prep). The photos are
copies when the agreeing blocks cover :data:`MIN_OVERLAP` of either photo and :data:`MIN_TEXTURED_AGREEMENT`
of the textured blocks in the overlap agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MIN_SCALE, MAX_SCALE = 0.25, 4.0  # a transform outside this is not a re-upload
BLOCK = 8  # agreement is decided per block of this many pixels square (at half the thumbnail's size)
MIN_BLOCK_CORRELATION = 0.8  # a textured block agrees when its normalised cross-correlation reaches this
FLAT_STD = 4.0  # a block this smooth (grey-level standard deviation) has no texture to correlate
FLAT_MEAN_DIFF = 12.0  # two smooth blocks agree when their mean grey levels are this close...
FLAT_COLOUR_DIFF = 20.0  # ...and their mean colours too (largest channel difference), where colour is known
MIN_OVERLAP = 0.6  # the agreeing blocks cover at least this share of one of the two photos
MIN_TEXTURED_AGREEMENT = 0.8  # and this share of the overlap's textured blocks agree


@dataclass(frozen=True)
class Pixels:
    """A grey thumbnail and, when known, its colour copy at a quarter of its size."""

    grey: np.ndarray
    colour: np.ndarray | None = None


@dataclass(frozen=True)
class Agreement:
    """How much of the photos agrees under the transform."""

    overlap: float  # agreeing share of the photo it covers most of
    textured: float  # share of the overlap's textured blocks that agree


def colour_thumbnail(rgb: np.ndarray, thumb_shape: tuple[int, ...]) -> np.ndarray:
    """``rgb`` shrunk to a quarter of the grey thumbnail's size (one colour per 4 x 4 thumbnail pixels)."""
    height, width = thumb_shape[:2]
    return cv2.resize(rgb, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)


def pixels_agree(new: Pixels, stored: Pixels, transform: np.ndarray) -> Agreement | None:
    """Whether ``new``, moved by ``transform`` (thumbnail coordinates), shows what ``stored`` shows over
    enough of either photo; None when not.
    """
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if not MIN_SCALE <= scale <= MAX_SCALE:
        return None
    small, other = _half(new.grey), _half(stored.grey)
    height, width = other.shape[:2]
    warped = cv2.warpAffine(small, _scaled(transform, 0.5), (width, height), flags=cv2.INTER_LINEAR)
    frame = np.full(small.shape[:2], 255, np.uint8)
    inside = cv2.warpAffine(frame, _scaled(transform, 0.5), (width, height), flags=cv2.INTER_NEAREST) > 0
    colours = None
    if new.colour is not None and stored.colour is not None:
        size = (stored.colour.shape[1], stored.colour.shape[0])
        moved = cv2.warpAffine(new.colour, _scaled(transform, 0.25), size, flags=cv2.INTER_LINEAR)
        colours = (moved, stored.colour)
    agreeing, textured = _agreement(warped, other, inside, colours)
    overlap = max(agreeing / (width * height), agreeing / (scale * scale * small.shape[0] * small.shape[1]))
    if overlap < MIN_OVERLAP or textured < MIN_TEXTURED_AGREEMENT:
        return None
    return Agreement(round(min(overlap, 1.0), 3), round(textured, 3))


def _scaled(transform: np.ndarray, factor: float) -> np.ndarray:
    """The same similarity between images ``factor`` times the size (the shift scales, the rest does not)."""
    scaled = transform.copy()
    scaled[:, 2] *= factor
    return scaled


def _half(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)


def _blocks(image: np.ndarray, rows: int, cols: int, side: int) -> np.ndarray:
    """``image`` cut into ``rows`` x ``cols`` blocks of ``side`` pixels square: (rows, cols, side*side, ...)."""
    cut = image[: rows * side, : cols * side].reshape(rows, side, cols, side, *image.shape[2:])
    return cut.swapaxes(1, 2).reshape(rows, cols, side * side, *image.shape[2:])


def _agreement(
    warped: np.ndarray, other: np.ndarray, inside: np.ndarray, colours: tuple[np.ndarray, np.ndarray] | None
) -> tuple[int, float]:
    """The agreeing area (in pixels of ``other``) and the share of the overlap's textured blocks that agree."""
    rows, cols = other.shape[0] // BLOCK, other.shape[1] // BLOCK
    if colours is not None:
        rows, cols = min(rows, colours[1].shape[0] // (BLOCK // 2)), min(cols, colours[1].shape[1] // (BLOCK // 2))
    if rows == 0 or cols == 0:
        return 0, 0.0
    x = _blocks(cv2.GaussianBlur(warped, (3, 3), 0.6).astype(np.float32), rows, cols, BLOCK)
    y = _blocks(cv2.GaussianBlur(other, (3, 3), 0.6).astype(np.float32), rows, cols, BLOCK)
    whole = _blocks(inside.astype(np.uint8), rows, cols, BLOCK).min(axis=2) > 0
    dx, dy = x - x.mean(axis=2, keepdims=True), y - y.mean(axis=2, keepdims=True)
    sx, sy = np.sqrt((dx * dx).mean(axis=2)), np.sqrt((dy * dy).mean(axis=2))
    textured = (sx > FLAT_STD) & (sy > FLAT_STD)
    correlation = (dx * dy).mean(axis=2) / np.maximum(sx * sy, 1e-6)
    flat_alike = (sx <= FLAT_STD) & (sy <= FLAT_STD) & (np.abs(x.mean(axis=2) - y.mean(axis=2)) <= FLAT_MEAN_DIFF)
    if colours is not None:
        moved, stored = (_blocks(c.astype(np.float32), rows, cols, BLOCK // 2).mean(axis=2) for c in colours)
        flat_alike &= np.abs(moved - stored).max(axis=2) <= FLAT_COLOUR_DIFF
    textured_agree = whole & textured & (correlation >= MIN_BLOCK_CORRELATION)
    agree = textured_agree | (whole & flat_alike)
    textured_share = float(textured_agree.sum()) / max(1, int((whole & textured).sum()))
    return int(agree.sum()) * BLOCK * BLOCK, textured_share
