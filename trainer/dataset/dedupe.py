"""Near-duplicate photos that survive rotation, flips, crops and recompression, and not the same face twice.

The hard problem: two uploads of one photo may differ by a quarter turn, a mirror image, a crop, a small
rotation or a recompression, and a perceptual hash of the whole image changes with each of those; while two
*different* photos of one person share a face, so "the same features are present" is not enough either.
The rule here: a photo is a duplicate of another when one can be laid onto the other by a similarity
transform (rotation, scale, shift, possibly mirrored) under which the **pixels agree** over an overlap that
covers at least half of one of the two photos. A crop, a rotated or re-saved copy passes; the same face in
another scene does not (the face is a small part of either photo, and around it the pixels disagree).

Two stages per pair:

1. cheap: the new photo's 64-bit perceptual hash under the 8 quarter-turn/mirror transforms against the
   stored photo's hash (exact re-uploads, rotated or mirrored copies: no feature work at all);
2. geometric: ORB features of a small grey thumbnail, matched with Lowe's ratio test against each stored
   photo's (and its mirror image's), a similarity transform fitted with RANSAC
   (``cv2.estimateAffinePartial2D``), then the pixels confirm it: the new thumbnail is warped into the
   stored one's frame, their normalised cross-correlation over the overlap must be high and the overlap
   large (:data:`MIN_OVERLAP` of either photo).

A :class:`Fingerprint` (hash, 256-px grey thumbnail as JPEG, keypoints and descriptors) is computed once at
upload and stored with the photo (:meth:`Fingerprint.to_bytes`, ~25 KB), so that checking a new upload
never re-reads the stored photos. OpenCV and imagehash do the image work; this module only decides.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import imagehash
import numpy as np
from PIL import Image

THUMB_SIDE = 256
ORB_FEATURES = 300
FAST_THRESHOLD = 10
RATIO = 0.75  # Lowe's ratio test: best match clearly better than the second best
MIN_MATCHES = 8  # good matches before a transform is fitted
MIN_INLIERS = 6  # RANSAC inliers for the transform to count
RANSAC_PX = 4.0  # reprojection error allowed, in thumbnail pixels
MIN_SCALE, MAX_SCALE = 0.25, 4.0  # a transform outside this is not a re-upload
BLOCK = 8  # agreement is decided per block of this many pixels square (at half the thumbnail's size)
MIN_BLOCK_CORRELATION = 0.8  # a textured block agrees when its normalised cross-correlation reaches this
FLAT_STD = 4.0  # a block this smooth (grey-level standard deviation) has no texture to correlate
FLAT_MEAN_DIFF = 12.0  # two smooth blocks agree when their mean grey levels are this close
MIN_OVERLAP = 0.6  # the agreeing blocks cover at least this share of one of the two photos
MIN_TEXTURED_AGREEMENT = 0.8  # and this share of the overlap's textured blocks agree
_FORMAT = b"ATFP1"
_HEADER = "<5s8sIII"  # format, 64-bit hash, JPEG length, point count, descriptor bytes


def dihedral_hashes(grey: np.ndarray) -> list[imagehash.ImageHash]:
    """Perceptual hashes of ``grey`` under the 8 quarter-turn and mirror transforms (identity first).

    The image is shrunk to the hash's 32x32 input once and the transforms are applied to that (they commute
    with the shrinking): 8 hashes for little more than the price of one.
    """
    small = np.asarray(Image.fromarray(grey, "L").resize((32, 32), Image.Resampling.LANCZOS))
    hashes = []
    for flipped in (small, small[:, ::-1]):
        for turns in range(4):
            rotated = np.ascontiguousarray(np.rot90(flipped, turns))
            hashes.append(imagehash.phash(Image.fromarray(rotated, "L")))
    return hashes


@dataclass(frozen=True)
class Features:
    """ORB keypoints (thumbnail coordinates) and their binary descriptors, strongest corners first."""

    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8

    @classmethod
    def of(cls, thumb: np.ndarray) -> Features:
        """Detect and describe ORB features in a grey thumbnail (contrast-equalised first, so that dim or
        low-contrast photos still yield enough corners).
        """
        equalised = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(thumb)
        orb = cv2.ORB.create(nfeatures=ORB_FEATURES, fastThreshold=FAST_THRESHOLD, edgeThreshold=15, patchSize=15)
        keypoints, descriptors = orb.detectAndCompute(equalised, None)
        if descriptors is None or not keypoints:
            return cls(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        strongest_first = np.argsort([-kp.response for kp in keypoints], kind="stable")
        points = np.array([kp.pt for kp in keypoints], dtype=np.float32)[strongest_first]
        return cls(points, descriptors[strongest_first])


@dataclass(frozen=True)
class Fingerprint:
    """What duplicate checks need of one photo (see the module docstring)."""

    phash: imagehash.ImageHash
    thumb: np.ndarray | None = None  # grey, longer side THUMB_SIDE; None: only the hash is known
    features: Features | None = None
    variants: tuple[imagehash.ImageHash, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, grey: np.ndarray) -> Fingerprint:
        """The fingerprint of a grey image (the analysis copy of an upload), with its 8 transformed hashes."""
        thumb = _thumbnail(grey)
        variants = tuple(dihedral_hashes(grey))
        return cls(variants[0], thumb, Features.of(thumb), variants)

    @classmethod
    def hash_only(cls, phash_hex: str) -> Fingerprint:
        """A photo stored before fingerprints existed: only its hash takes part."""
        return cls(imagehash.hex_to_hash(phash_hex))

    @cached_property
    def _mirror(self) -> tuple[np.ndarray, Features] | None:
        if self.thumb is None:
            return None
        mirrored = np.ascontiguousarray(self.thumb[:, ::-1])
        return mirrored, Features.of(mirrored)

    def to_bytes(self) -> bytes:
        """Compact storage form: the hash, the thumbnail as JPEG, points and descriptors."""
        if self.thumb is None or self.features is None:
            raise ValueError("a hash-only fingerprint is not stored")
        ok, jpeg = cv2.imencode(".jpg", self.thumb, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise ValueError("the thumbnail could not be encoded")
        points = self.features.points.astype(np.float16).tobytes()
        descriptors = self.features.descriptors.tobytes()
        count = len(self.features.points)
        head = struct.pack(_HEADER, _FORMAT, bytes.fromhex(str(self.phash)), len(jpeg), count, len(descriptors))
        return head + jpeg.tobytes() + points + descriptors

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of :meth:`to_bytes`; ValueError for anything else."""
        buffer = io.BytesIO(data)
        try:
            magic, phash, jpeg_len, count, desc_len = struct.unpack(_HEADER, buffer.read(struct.calcsize(_HEADER)))
        except struct.error as exc:
            raise ValueError("not a photo fingerprint") from exc
        if magic != _FORMAT or desc_len != count * 32:
            raise ValueError("not a photo fingerprint")
        thumb = cv2.imdecode(np.frombuffer(buffer.read(jpeg_len), np.uint8), cv2.IMREAD_GRAYSCALE)
        points = np.frombuffer(buffer.read(count * 4), np.float16).astype(np.float32).reshape(count, 2)
        descriptors = np.frombuffer(buffer.read(desc_len), np.uint8).reshape(count, 32)
        if thumb is None or len(descriptors) != count:
            raise ValueError("a truncated photo fingerprint")
        return cls(imagehash.hex_to_hash(phash.hex()), thumb, Features(points, descriptors))


def _thumbnail(grey: np.ndarray) -> np.ndarray:
    height, width = grey.shape[:2]
    factor = max(width, height) / THUMB_SIDE
    if factor <= 1.0:
        return np.ascontiguousarray(grey)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Match:
    """Why two photos are the same: ``hash`` (a dihedral transform of the hash) or ``pixels`` (a transform
    under which the pixels agree), with the numbers that decided it.
    """

    def describe(self) -> str:
        """How the copy differs, for people: empty for a plain re-upload."""
        if self.how == "pixels":
            return "a crop, rotation or re-save of it"
        return "turned or mirrored" if self.turned else ""

    how: str
    distance: int | None = None  # hash: the smallest Hamming distance over the 8 transforms
    turned: bool = False  # hash: the closest was a quarter turn or mirror image
    overlap: float | None = None  # pixels: the agreeing share of the photo it covers most of
    textured: float | None = None  # pixels: the share of the overlap's textured blocks that agree


def _hash_match(new: Fingerprint, stored: Fingerprint, hash_distance: int) -> Match | None:
    variants = new.variants or (new.phash,)
    distances = [int(variant - stored.phash) for variant in variants]
    best = min(range(len(distances)), key=distances.__getitem__)
    if distances[best] > hash_distance:
        return None
    return Match("hash", distance=distances[best], turned=best != 0)


def same_photo(new: Fingerprint, stored: Fingerprint, *, hash_distance: int) -> Match | None:
    """Whether ``new`` is a copy of ``stored`` (rotated, mirrored, cropped, re-saved); None when not."""
    return _hash_match(new, stored, hash_distance) or _geometric_match(new, stored)


def find_duplicate(
    new: Fingerprint, stored: Mapping[str, Fingerprint], *, hash_distance: int
) -> tuple[str, Match] | None:
    """The stored photo ``new`` copies, if any: the closest hash first (cheap), then geometry, in order."""
    by_hash = [(match.distance or 0, key, match) for key, fp in stored.items()
               if (match := _hash_match(new, fp, hash_distance)) is not None]  # fmt: skip
    if by_hash:
        _, key, match = min(by_hash, key=lambda found: found[0])
        return key, match
    for key, fingerprint in stored.items():
        geometric = _geometric_match(new, fingerprint)
        if geometric is not None:
            return key, geometric
    return None


def _geometric_match(new: Fingerprint, stored: Fingerprint) -> Match | None:
    if new.thumb is None or new.features is None or stored.thumb is None or stored.features is None:
        return None
    mirror = new._mirror
    orientations = [(new.thumb, new.features)] + ([mirror] if mirror is not None else [])
    matched = _ratio_matches([features for _, features in orientations], stored.features)
    for (thumb, features), (query, train) in zip(orientations, matched, strict=True):
        transform = _similarity(features.points[query], stored.features.points[train])
        if transform is not None:
            found = _pixels_agree(thumb, stored.thumb, transform)
            if found is not None:
                return found
    return None


def _pixels_agree(thumb: np.ndarray, other: np.ndarray, transform: np.ndarray) -> Match | None:
    """Whether ``thumb``, moved by ``transform``, shows what ``other`` shows over enough of either.

    Compared at half the thumbnail's size: the blocks then cover the same ground for a quarter of the work.
    """
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if not MIN_SCALE <= scale <= MAX_SCALE:
        return None
    small, other_small = _half(thumb), _half(other)
    halved = transform.copy()
    halved[:, 2] *= 0.5
    height, width = other_small.shape[:2]
    warped = cv2.warpAffine(small, halved, (width, height), flags=cv2.INTER_LINEAR)
    frame = np.full(small.shape[:2], 255, np.uint8)
    inside = cv2.warpAffine(frame, halved, (width, height), flags=cv2.INTER_NEAREST)
    agreeing, textured = _agreement(warped, other_small, inside > 0)
    overlap = max(agreeing / (width * height), agreeing / (scale * scale * small.shape[0] * small.shape[1]))
    if overlap < MIN_OVERLAP or textured < MIN_TEXTURED_AGREEMENT:
        return None
    return Match("pixels", overlap=round(min(overlap, 1.0), 3), textured=round(textured, 3))


def _half(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA)


def _ratio_matches(queries: list[Features], other: Features) -> list[tuple[np.ndarray, np.ndarray]]:
    """Lowe-ratio-tested matches of each query's descriptors in ``other``'s (one matcher call for all):
    per query, the indices of its matched points and of their partners in ``other``.
    """
    counts = [len(query.descriptors) for query in queries]
    empty = (np.zeros(0, np.intp), np.zeros(0, np.intp))
    if len(other.descriptors) < 2 or sum(counts) == 0:
        return [empty for _ in queries]
    stacked = np.concatenate([query.descriptors for query in queries])
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(stacked, other.descriptors, k=2)
    rows = [(p[0].queryIdx, p[0].trainIdx) for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    found = np.array(rows, dtype=np.intp).reshape(-1, 2)
    out = []
    start = 0
    for count in counts:
        mine = found[(found[:, 0] >= start) & (found[:, 0] < start + count)]
        out.append((mine[:, 0] - start, mine[:, 1]))
        start += count
    return out


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray | None:
    """A rotation + scale + shift taking matched ``source`` points onto ``target``, fitted by RANSAC."""
    if len(source) < MIN_MATCHES:
        return None
    transform, inliers = cv2.estimateAffinePartial2D(
        source, target, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX, maxIters=2000, confidence=0.99
    )
    if transform is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
        return None
    return np.asarray(transform, dtype=np.float64)


def _blocks(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``image`` cut into ``rows`` x ``cols`` blocks of BLOCK x BLOCK pixels: shape (rows, cols, BLOCK**2)."""
    cut = image[: rows * BLOCK, : cols * BLOCK].reshape(rows, BLOCK, cols, BLOCK)
    return cut.transpose(0, 2, 1, 3).reshape(rows, cols, BLOCK * BLOCK)


def _agreement(warped: np.ndarray, other: np.ndarray, inside: np.ndarray) -> tuple[int, float]:
    """Where ``warped`` shows what ``other`` shows, block by block over the overlap: the agreeing area (in
    pixels of ``other``) and the share of the overlap's textured blocks that agree.

    A textured block agrees when its normalised cross-correlation is high; two smooth blocks agree when
    their grey levels match. Both images are blurred a little first (resampling and JPEG noise).
    """
    rows, cols = other.shape[0] // BLOCK, other.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        return 0, 0.0
    x = _blocks(cv2.GaussianBlur(warped, (3, 3), 0.6).astype(np.float32), rows, cols)
    y = _blocks(cv2.GaussianBlur(other, (3, 3), 0.6).astype(np.float32), rows, cols)
    whole = _blocks(inside.astype(np.uint8), rows, cols).min(axis=2) > 0
    dx, dy = x - x.mean(axis=2, keepdims=True), y - y.mean(axis=2, keepdims=True)
    sx, sy = np.sqrt((dx * dx).mean(axis=2)), np.sqrt((dy * dy).mean(axis=2))
    textured = (sx > FLAT_STD) & (sy > FLAT_STD)
    correlation = (dx * dy).mean(axis=2) / np.maximum(sx * sy, 1e-6)
    flat = (sx <= FLAT_STD) & (sy <= FLAT_STD)
    same_level = np.abs(x.mean(axis=2) - y.mean(axis=2)) <= FLAT_MEAN_DIFF
    textured_agree = whole & textured & (correlation >= MIN_BLOCK_CORRELATION)
    agree = textured_agree | (whole & flat & same_level)
    textured_share = float(textured_agree.sum()) / max(1, int((whole & textured).sum()))
    return int(agree.sum()) * BLOCK * BLOCK, textured_share
