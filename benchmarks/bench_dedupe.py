"""Duplicate detection: precision and recall on a generated set, against the old plain perceptual hash, and cost.

The set (tests/support/dedupe_set.py): scikit-image's sample photos and, for each, copies turned a quarter,
mirrored, cropped to 50-90 % of the area, rotated 10-15 degrees, rescaled and re-saved as JPEG, and
combinations; distinct pairs are the other photos and "the same person in other scenes" (the astronaut's
head, at most ~35 % of the photo, pasted onto other photos with its colours changed). Each seed draws other
crops and scenes. Baseline: one 64-bit perceptual hash within Hamming distance 6 (what uploads used before).
Then the cost: fingerprinting a photo, and checking one upload against a subject's 10 / 25 / 50 photos.

    .venv/bin/python -m benchmarks.bench_dedupe [--seeds 0,1,2] [--people 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import imagehash
from PIL import Image

from tests.support.dedupe_set import Scores, pairs, same_person, score, sources
from trainer.dataset import DatasetLimits
from trainer.dataset.dedupe import Fingerprint, find_duplicate, same_photo
from trainer.dataset.images import analyse, rgb_array

LIMITS = DatasetLimits()


def _fingerprint(image: Image.Image) -> Fingerprint:
    """What an upload's check computes for the duplicate test (grey analysis copy + colour)."""
    pixels = rgb_array(image.convert("RGB"))
    return Fingerprint.of(analyse(pixels, LIMITS.analysis_side).grey, pixels)


class Detectors:
    """Both detectors, each image prepared once."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[Image.Image, Fingerprint]] = {}

    def fingerprint(self, image: Image.Image) -> Fingerprint:
        """The image's fingerprint (cached by identity)."""
        if id(image) not in self._made:
            self._made[id(image)] = (image, _fingerprint(image))
        return self._made[id(image)][1]

    def fingerprints(self, first: Image.Image, second: Image.Image) -> bool:
        """The new detector."""
        found = same_photo(self.fingerprint(second), self.fingerprint(first), hash_distance=LIMITS.duplicate_distance)
        return found is not None

    def plain_hash(self, first: Image.Image, second: Image.Image) -> bool:
        """The baseline: the phash of each photo as it is."""
        return bool(self.fingerprint(first).phash - self.fingerprint(second).phash <= LIMITS.duplicate_distance)


def _line(name: str, result: Scores) -> str:
    return (
        f"  {name:<13} recall {result.recall:.3f} ({result.caught}/{result.duplicates})  "
        f"precision {result.precision:.3f} ({len(result.false_alarms)} false alarms)"
    )


def _quality(seeds: list[int], people: int) -> None:
    totals = {"plain hash": [0, 0, 0], "fingerprints": [0, 0, 0]}  # caught, duplicates, false alarms
    for seed in seeds:
        cases = pairs(seed=seed, people=people)
        detectors = Detectors()
        print(f"seed {seed}: {len(cases)} pairs, {sum(c.duplicate for c in cases)} copies")
        for name, decide in (("plain hash", detectors.plain_hash), ("fingerprints", detectors.fingerprints)):
            result = score(cases, decide)
            print(_line(name, result))
            if name == "fingerprints" and (result.missed or result.false_alarms):
                print(f"    missed {result.missed}  false alarms {result.false_alarms}")
            totals[name][0] += result.caught
            totals[name][1] += result.duplicates
            totals[name][2] += len(result.false_alarms)
    for name, (caught, duplicates, false) in totals.items():
        precision = caught / (caught + false) if caught + false else 1.0
        print(f"all seeds, {name}: recall {caught / duplicates:.3f}, precision {precision:.3f}")


def _cost() -> None:
    photos = [*sources().values(), *same_person(40, seed=7)]
    detectors = Detectors()
    started = time.perf_counter()
    prints = [detectors.fingerprint(photo) for photo in photos]
    per_print = (time.perf_counter() - started) / len(photos) * 1000
    size = statistics.median(len(fp.to_bytes()) for fp in prints)
    print(f"fingerprint: {per_print:.1f} ms per photo (512 px analysis copy given), {size / 1000:.1f} KB stored")
    new = detectors.fingerprint(same_person(1, seed=99)[0])
    for count in (10, 25, 50):
        stored = {str(i): fp for i, fp in enumerate(prints[:count])}
        timings = []
        for _ in range(3):
            fresh = Fingerprint(new.phash, new.thumb, new.features, new.variants)  # mirror features not cached
            started = time.perf_counter()
            found = find_duplicate(fresh, stored, hash_distance=LIMITS.duplicate_distance)
            timings.append(time.perf_counter() - started)
        assert found is None
        print(f"check one distinct upload against {count:2d} photos: {statistics.median(timings) * 1000:6.1f} ms")
    print(f"(a hash-only check: {_hash_only_cost(prints):.3f} ms against 50 photos)")


def _hash_only_cost(prints: list[Fingerprint]) -> float:
    hashes = [fp.phash for fp in prints[:50]]
    probe = imagehash.hex_to_hash(str(prints[-1].phash))
    started = time.perf_counter()
    for _ in range(100):
        min(int(probe - other) for other in hashes)
    return (time.perf_counter() - started) / 100 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--people", type=int, default=16)
    args = parser.parse_args()
    _quality([int(seed) for seed in args.seeds.split(",")], args.people)
    _cost()


if __name__ == "__main__":
    main()
