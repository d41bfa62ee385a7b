"""A generated set for duplicate detection: copies that must be caught, and distinct photos that must not.

Sources are scikit-image's bundled sample photos (no download). Copies of a source: the 7 quarter-turn and
mirror transforms, crops keeping 50-90 % of the area, small rotations (10-15 degrees, cropped to the
rotated content), a rescale with a lower-quality JPEG, and combinations. Distinct photos: the other sources,
and "the same person in other scenes": the astronaut's head pasted at several scales (at most ~35 % of the
photo) and places onto backgrounds made from other photos, with its colours changed.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps
from skimage import data as skdata

HEAD_BOX = (150, 25, 320, 215)  # the astronaut's head and hair in skimage's 512x512 astronaut()


@functools.cache
def sources() -> dict[str, Image.Image]:
    """Photo-like samples at 400 px or more on the shorter side (upscaled where smaller)."""
    raw = {
        "astronaut": skdata.astronaut(),
        "chelsea": skdata.chelsea(),
        "coffee": skdata.coffee(),
        "rocket": skdata.rocket(),
        "camera": skdata.camera(),
        "immunohistochemistry": skdata.immunohistochemistry(),
        "hubble": skdata.hubble_deep_field()[:700, :900],
        "coins": skdata.coins(),
        "moon": skdata.moon(),
        "clock": skdata.clock(),
        "retina": skdata.retina()[200:1200, 200:1200],
        "cell": skdata.cell(),
    }
    out = {}
    for name, pixels in raw.items():
        image = Image.fromarray(pixels).convert("RGB")
        factor = 400 / min(image.size)
        if factor > 1:
            image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
        out[name] = image
    return out


def _crop(image: Image.Image, keep: float, rng: np.random.Generator) -> Image.Image:
    aspect = rng.uniform(0.8, 1.25)
    width = min(image.width, round(math.sqrt(keep * image.width * image.height * aspect)))
    height = min(image.height, round(keep * image.width * image.height / width))
    left = int(rng.integers(0, image.width - width + 1))
    top = int(rng.integers(0, image.height - height + 1))
    return image.crop((left, top, left + width, top + height))


def _rotate(image: Image.Image, degrees: float) -> Image.Image:
    """Rotate and crop to the largest upright rectangle inside the rotated content (no black corners)."""
    angle = math.radians(abs(degrees))
    width, height = image.size
    rotated = image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True)
    # Largest axis-aligned rectangle of the same aspect inside a w x h rectangle rotated by angle.
    factor = 1 / (math.cos(angle) + math.sin(angle) * max(width, height) / min(width, height))
    inner_w, inner_h = width * factor, height * factor
    left, top = (rotated.width - inner_w) / 2, (rotated.height - inner_h) / 2
    return rotated.crop((round(left), round(top), round(left + inner_w), round(top + inner_h)))


def _recompress(image: Image.Image, scale: float, quality: int) -> Image.Image:
    small = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


Transform = Callable[[Image.Image, np.random.Generator], Image.Image]

COPIES: dict[str, Transform] = {
    "rot90": lambda im, _: im.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda im, _: im.transpose(Image.Transpose.ROTATE_180),
    "rot270": lambda im, _: im.transpose(Image.Transpose.ROTATE_270),
    "hflip": lambda im, _: ImageOps.mirror(im),
    "vflip": lambda im, _: ImageOps.flip(im),
    "transpose": lambda im, _: im.transpose(Image.Transpose.TRANSPOSE),
    "crop90": lambda im, rng: _crop(im, 0.9, rng),
    "crop70": lambda im, rng: _crop(im, 0.7, rng),
    "crop50": lambda im, rng: _crop(im, 0.5, rng),
    "rotate+10": lambda im, _: _rotate(im, 10),
    "rotate-15": lambda im, _: _rotate(im, -15),
    "rescale+jpeg": lambda im, _: _recompress(im, 0.6, 60),
    "crop70+hflip": lambda im, rng: ImageOps.mirror(_crop(im, 0.7, rng)),
    "rotate-10+rescale": lambda im, _: _recompress(_rotate(im, -10), 0.75, 75),
    "rot90+crop60": lambda im, rng: _crop(im.transpose(Image.Transpose.ROTATE_90), 0.6, rng),
}


def copies(name: str, seed: int = 0) -> dict[str, Image.Image]:
    """Every copy of source ``name``, by transform name."""
    return copies_of(sources()[name], seed)


def copies_of(image: Image.Image, seed: int = 0) -> dict[str, Image.Image]:
    """Every copy of ``image``, by transform name."""
    rng = np.random.default_rng(seed)
    return {label: transform(image, rng) for label, transform in COPIES.items()}


def _background(name: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    source = sources()[name]
    crop = _crop(source, rng.uniform(0.5, 1.0), rng)
    return crop.resize(size, Image.Resampling.BICUBIC)


def same_person(count: int, seed: int = 0) -> list[Image.Image]:
    """``count`` photos of the astronaut's head in other scenes (head 12-35 % of the photo's area)."""
    rng = np.random.default_rng(seed)
    head = sources()["astronaut"].crop(HEAD_BOX)
    backgrounds = [n for n in sources() if n != "astronaut"]
    sizes = [(640, 480), (512, 640), (600, 600), (720, 480)]
    photos = []
    for index in range(count):
        size = sizes[index % len(sizes)]
        canvas = _background(backgrounds[index % len(backgrounds)], size, rng)
        share = rng.uniform(0.12, 0.35)
        side = math.sqrt(share * size[0] * size[1] * head.height / head.width)
        person = head.resize((round(side * head.width / head.height), round(side)), Image.Resampling.BICUBIC)
        person = ImageEnhance.Color(person).enhance(rng.uniform(0.5, 1.5))
        person = ImageEnhance.Brightness(person).enhance(rng.uniform(0.8, 1.2))
        if rng.random() < 0.5:
            person = ImageOps.mirror(person)
        left = int(rng.integers(0, size[0] - person.width + 1))
        top = int(rng.integers(0, size[1] - person.height + 1))
        canvas.paste(person, (left, top))
        photos.append(canvas)
    return photos


@dataclass(frozen=True)
class Pair:
    """Two photos and whether they are the same photo."""

    label: str
    first: Image.Image
    second: Image.Image
    duplicate: bool


def pairs(seed: int = 0, people: int = 8) -> list[Pair]:
    """Every (source, copy) pair, every pair of distinct sources, and the same-person pairs."""
    out = []
    names = list(sources())
    for name in names:
        for label, copy in copies(name, seed).items():
            out.append(Pair(f"{name}/{label}", sources()[name], copy, True))
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            out.append(Pair(f"{first}~{second}", sources()[first], sources()[second], False))
    scenes = same_person(people, seed)
    for i, first_scene in enumerate(scenes):
        out.append(Pair(f"astronaut~scene{i}", sources()["astronaut"], first_scene, False))
        for j in range(i + 1, len(scenes)):
            out.append(Pair(f"scene{i}~scene{j}", first_scene, scenes[j], False))
    return out


@dataclass(frozen=True)
class Scores:
    """Precision and recall of a duplicate detector on :func:`pairs`, and what it got wrong."""

    pairs: int
    duplicates: int
    caught: int
    missed: list[str]
    false_alarms: list[str]

    @property
    def recall(self) -> float:
        """Share of the copies that were caught."""
        return self.caught / self.duplicates if self.duplicates else 1.0

    @property
    def precision(self) -> float:
        """Share of the pairs flagged that really are copies."""
        flagged = self.caught + len(self.false_alarms)
        return self.caught / flagged if flagged else 1.0


def score(cases: list[Pair], is_duplicate: Callable[[Image.Image, Image.Image], bool]) -> Scores:
    """Run ``is_duplicate(first, second)`` over ``cases``."""
    missed, false_alarms, caught = [], [], 0
    for case in cases:
        flagged = is_duplicate(case.first, case.second)
        if case.duplicate and flagged:
            caught += 1
        elif case.duplicate:
            missed.append(case.label)
        elif flagged:
            false_alarms.append(case.label)
    duplicates = sum(case.duplicate for case in cases)
    return Scores(len(cases), duplicates, caught, missed, false_alarms)
