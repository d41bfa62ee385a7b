"""Near-duplicate photos that survive rotation, flips, crops and recompression, and not the same face twice.

The hard problem: two uploads of one photo may differ by a quarter turn, a mirror image, a crop, a small
rotation or a recompression, and a perceptual hash of the whole image changes with each of those; while two
*different* photos of one person share a face, so "the same features are present" is not enough either.
The rule here: a photo is a duplicate of another when one can be laid onto the other by a similarity
transform (rotation, scale, shift, possibly mirrored) under which the **pixels agree** over 60 % of one of
the two photos. A crop (down to half), a rotated or re-saved copy passes; the same face in another scene
does not (the face is a small part of either photo, and around it the pixels disagree).

Two stages per pair:

1. cheap: the new photo's 64-bit perceptual hash under the 8 quarter-turn/mirror transforms against the
   stored photo's hash (exact re-uploads, rotated or mirrored copies: no feature work at all);
2. geometric: ORB features of a small grey thumbnail, matched with Lowe's ratio test against each stored
   photo's (and its mirror image's), a similarity transform fitted with RANSAC
   (``cv2.estimateAffinePartial2D``), then the pixels confirm it, block by block
   (:mod:`trainer.dataset.dedupe_pixels`: correlation where there is texture, grey level and colour where
   it is smooth).

A :class:`Fingerprint` (hash, 256-px grey thumbnail and a 64-px colour one as JPEG, keypoints and
descriptors) is computed once at upload and stored with the photo (:meth:`Fingerprint.to_bytes`, ~28 KB),
so that checking a new upload never re-reads the stored photos. OpenCV and imagehash do the image work;
this module only decides. Measured (bench_dedupe, 1,146 generated pairs): recall 0.996, precision 1.000;
checking an upload against 50 photos of one person ~90 ms on a quiet 2-core machine.
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

from trainer.dataset.dedupe_pixels import Pixels, colour_thumbnail, pixels_agree

THUMB_SIDE = 256
ORB_FEATURES = 300
FAST_THRESHOLD = 10
RATIO = 0.75  # Lowe's ratio test: best match clearly better than the second best
MIN_MATCHES = 8  # good matches before a transform is fitted
MIN_INLIERS = 6  # RANSAC inliers for the transform to count
RANSAC_PX = 4.0  # reprojection error allowed, in thumbnail pixels
_FORMAT = b"ATFP2"
_FORMAT_WITHOUT_COLOUR = b"ATFP1"
_HEADER = "<5s8sIII"  # format, 64-bit hash, JPEG length, point count, descriptor bytes (then the colour JPEG)


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
    colour: np.ndarray | None = field(default=None, compare=False, repr=False)  # RGB, a quarter of thumb

    @classmethod
    def of(cls, grey: np.ndarray, rgb: np.ndarray | None = None) -> Fingerprint:
        """The fingerprint of a grey image (the analysis copy of an upload), with its 8 transformed hashes,
        and a small colour copy of ``rgb`` (the same photo in colour, any size) when given.
        """
        thumb = _thumbnail(grey)
        variants = tuple(dihedral_hashes(grey))
        colour = None if rgb is None else colour_thumbnail(rgb, thumb.shape)
        return cls(variants[0], thumb, Features.of(thumb), variants, colour)

    @classmethod
    def hash_only(cls, phash_hex: str) -> Fingerprint:
        """A photo stored before fingerprints existed: only its hash takes part."""
        return cls(imagehash.hex_to_hash(phash_hex))

    @cached_property
    def _mirror(self) -> tuple[Pixels, Features] | None:
        if self.thumb is None:
            return None
        mirrored = np.ascontiguousarray(self.thumb[:, ::-1])
        colour = None if self.colour is None else np.ascontiguousarray(self.colour[:, ::-1])
        return Pixels(mirrored, colour), Features.of(mirrored)

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
        colour = b""
        if self.colour is not None:
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(self.colour, cv2.COLOR_RGB2BGR))
            colour = encoded.tobytes() if ok else b""
        head = struct.pack(_HEADER, _FORMAT, bytes.fromhex(str(self.phash)), len(jpeg), count, len(descriptors))
        return head + jpeg.tobytes() + points + descriptors + colour

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """Inverse of :meth:`to_bytes`; ValueError for anything else."""
        buffer = io.BytesIO(data)
        try:
            magic, phash, jpeg_len, count, desc_len = struct.unpack(_HEADER, buffer.read(struct.calcsize(_HEADER)))
        except struct.error as exc:
            raise ValueError("not a photo fingerprint") from exc
        if magic not in (_FORMAT, _FORMAT_WITHOUT_COLOUR) or desc_len != count * 32:
            raise ValueError("not a photo fingerprint")
        try:
            thumb = cv2.imdecode(np.frombuffer(buffer.read(jpeg_len), np.uint8), cv2.IMREAD_GRAYSCALE)
            points = np.frombuffer(buffer.read(count * 4), np.float16).astype(np.float32).reshape(count, 2)
            descriptors = np.frombuffer(buffer.read(desc_len), np.uint8).reshape(count, 32)
        except (ValueError, cv2.error) as exc:
            raise ValueError("a truncated photo fingerprint") from exc
        if thumb is None:
            raise ValueError("a truncated photo fingerprint")
        rest = buffer.read()
        colour = cv2.imdecode(np.frombuffer(rest, np.uint8), cv2.IMREAD_COLOR) if rest else None
        colour = None if colour is None else cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
        return cls(imagehash.hex_to_hash(phash.hex()), thumb, Features(points, descriptors), colour=colour)


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
    orientations = [(Pixels(new.thumb, new.colour), new.features)] + ([mirror] if mirror is not None else [])
    matched = _ratio_matches([features for _, features in orientations], stored.features)
    for (pixels, features), (query, train) in zip(orientations, matched, strict=True):
        transform = _similarity(features.points[query], stored.features.points[train])
        if transform is None:
            continue
        agreement = pixels_agree(pixels, Pixels(stored.thumb, stored.colour), transform)
        if agreement is not None:
            return Match("pixels", overlap=agreement.overlap, textured=agreement.textured)
    return None


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
