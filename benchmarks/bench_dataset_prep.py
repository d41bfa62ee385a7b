"""Dataset preparation throughput: photos per second for check (validate, dedupe, face) + prepare (crop, resize).

Generates N distinct 1-2 MP JPEG "photos" (the head of scikit-image's astronaut() pasted at a random place
and scale, 8-35 % of the photo, onto random backgrounds: distinct photos of one person, not copies of one),
runs every upload through :class:`trainer.dataset.PhotoChecker` as a person subject, then
:func:`trainer.dataset.prepare_dataset` on the accepted ones (face boxes reused from the check), and prints
photos/s. Photo generation is not timed. Target (DESIGN.md): >= 20 photos/s on the 2-core machine. The same
head, pixel for pixel, in every photo is the duplicate check's worst case: every pair has features in
common, so every pair goes through the geometric check (real photos of one person rarely share pixels).

    .venv/bin/python benchmarks/bench_dataset_prep.py [--photos 100] [--resolution 1024] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance
from skimage import data as skdata

from tests.support.dedupe_set import HEAD_BOX
from trainer.dataset import DatasetPhoto, PhotoChecker, PrepareOptions, SubjectKind, Upload, prepare_dataset

SIZES = [(1200, 900), (1280, 960), (1600, 1200), (1000, 1000), (1440, 1080), (1080, 1350)]


def make_photos(count: int, seed: int) -> list[bytes]:
    """``count`` distinct JPEG photos, each with the astronaut's face somewhere in it."""
    rng = np.random.default_rng(seed)
    head = Image.fromarray(skdata.astronaut()).crop(HEAD_BOX)
    photos = []
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        canvas = _background(rng, width, height)
        side = math.sqrt(rng.uniform(0.08, 0.35) * width * height * head.height / head.width)
        person = head.resize((round(side * head.width / head.height), round(side)), Image.Resampling.BILINEAR)
        person = ImageEnhance.Color(person).enhance(rng.uniform(0.6, 1.4))
        if rng.random() < 0.5:
            person = person.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        left = int(rng.integers(0, width - person.width + 1))
        top = int(rng.integers(0, height - person.height + 1))
        canvas.paste(person, (left, top))
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=90)
        photos.append(buffer.getvalue())
    return photos


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / width + np.sin(angle) * ys / height + 1.0) / 2.0
    colours = rng.uniform(0, 255, size=(2, 3))
    pixels = colours[0] * ramp[..., None] + colours[1] * (1.0 - ramp[..., None])
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=fill)
    return image


def run(photos: list[bytes], resolution: int, workers: int) -> tuple[float, int, dict[str, int]]:
    """Check and prepare; return elapsed seconds, accepted count and rejection counts by reason."""
    started = time.perf_counter()
    accepted_total = 0
    rejected: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # A subject holds at most 50 photos, so the photos are split over subjects of up to 50.
        for first in range(0, len(photos), 50):
            checker = PhotoChecker(SubjectKind.PERSON)
            batch = [
                Upload(photos[i], f"photo{i}.jpg", f"p{i:03d}") for i in range(first, min(first + 50, len(photos)))
            ]
            accepted = []
            for verdict in checker.check_many(batch, workers=workers):
                if verdict.photo is not None:
                    accepted.append(DatasetPhoto(verdict.photo_id, verdict.photo.image.data, verdict.photo.face_box))
                elif verdict.reason is not None:
                    rejected[verdict.reason.value] = rejected.get(verdict.reason.value, 0) + 1
            if accepted:
                options = PrepareOptions(resolution=resolution)
                root = Path(tmp) / f"subject{first}"
                prepare_dataset(
                    root, accepted, trigger="sks", kind=SubjectKind.PERSON, options=options, workers=workers
                )
            accepted_total += len(accepted)
    return time.perf_counter() - started, accepted_total, rejected


def main() -> None:
    """Parse arguments, generate photos, run twice (the first warms caches) and print the rate."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    photos = make_photos(args.photos, seed=7)
    megapixels = sum(_pixels(p) for p in photos) / len(photos) / 1e6
    print(f"{len(photos)} photos, {megapixels:.2f} MP average, resolution {args.resolution}, workers {args.workers}")
    rates = []
    for attempt in range(args.repeats):
        elapsed, accepted, rejected = run(photos, args.resolution, args.workers)
        rate = len(photos) / elapsed
        rates.append(rate)
        print(f"run {attempt + 1}: {elapsed:.2f} s, {rate:.1f} photos/s, accepted {accepted}, rejected {rejected}")
    print(f"best {max(rates):.1f} photos/s, median {sorted(rates)[len(rates) // 2]:.1f} photos/s")


def _pixels(blob: bytes) -> int:
    with Image.open(io.BytesIO(blob)) as image:
        return image.width * image.height


if __name__ == "__main__":
    main()
