"""Duplicate photos that are turned, mirrored, cropped, slightly rotated or re-saved; the same face elsewhere is not."""

from __future__ import annotations

from collections.abc import Callable

import imagehash
import numpy as np
import pytest
from PIL import Image

from tests.support.dedupe_set import HEAD_BOX, copies, pairs, same_person, score, sources
from tests.unit.trainer.images import encode
from trainer.dataset import DatasetLimits, PhotoChecker, RejectReason, SubjectKind, check_photo
from trainer.dataset.dedupe import Fingerprint, dihedral_hashes, same_photo
from trainer.dataset.images import analyse, rgb_array

LIMITS = DatasetLimits(min_side=64, blur_threshold=0)


def fingerprinting_detector() -> Callable[[Image.Image, Image.Image], bool]:
    """``same_photo`` on fingerprints, each image fingerprinted once (sources recur in many pairs)."""
    made: dict[int, tuple[Image.Image, Fingerprint]] = {}

    def fingerprint(image: Image.Image) -> Fingerprint:
        if id(image) not in made:
            made[id(image)] = (image, _fingerprint(image))
        return made[id(image)][1]

    def is_duplicate(first: Image.Image, second: Image.Image) -> bool:
        found = same_photo(fingerprint(second), fingerprint(first), hash_distance=LIMITS.duplicate_distance)
        return found is not None

    return is_duplicate


def test_precision_and_recall_on_the_generated_set() -> None:
    # 12 sources x 15 kinds of copy, 66 pairs of distinct sources, 8 scenes of one person (36 pairs).
    result = score(pairs(seed=0, people=8), fingerprinting_detector())
    assert (result.pairs, result.duplicates) == (282, 180)
    assert result.false_alarms == []  # precision 1.0: no distinct photo is called a copy
    assert result.recall >= 0.98, result.missed


@pytest.mark.parametrize("source", ["astronaut", "coffee", "camera"])
def test_every_kind_of_copy_is_refused_at_upload_naming_the_original(source: str) -> None:
    checker = PhotoChecker(SubjectKind.STYLE, limits=LIMITS)
    assert checker.check(encode(sources()[source], "PNG"), "original.png", "original").accepted
    for label, copy in copies(source, seed=3).items():
        verdict = checker.check(encode(copy, "JPEG", quality=85), f"{label}.jpg", label)
        assert verdict.reason is RejectReason.DUPLICATE, (label, verdict.message)
        assert verdict.duplicate_of == "original"
    assert checker.accepted_count == 1


def test_distinct_photos_of_one_person_are_all_accepted() -> None:
    checker = PhotoChecker(SubjectKind.PERSON)
    verdicts = [checker.check(encode(photo, "JPEG", quality=90), f"{i}.jpg", str(i)) for i, photo in
                enumerate([sources()["astronaut"], *same_person(8, seed=1)])]  # fmt: skip
    assert [v.message for v in verdicts if not v.accepted] == []
    assert checker.accepted_count == 9


def test_messages_say_how_the_copy_differs() -> None:
    checker = PhotoChecker(SubjectKind.STYLE, limits=LIMITS)
    original = sources()["chelsea"]
    checker.check(encode(original), "a.jpg", "a")
    again = checker.check(encode(original, "PNG"), "b.png", "b")
    turned = checker.check(encode(original.transpose(Image.Transpose.ROTATE_90)), "c.jpg", "c")
    cropped = checker.check(encode(copies("chelsea")["crop70"]), "d.jpg", "d")
    assert again.message == "duplicate of photo a"
    assert turned.message == "duplicate of photo a (turned or mirrored)"
    assert cropped.message == "duplicate of photo a (a crop, rotation or re-save of it)"


def test_a_stored_fingerprint_decides_like_the_fresh_one() -> None:
    first = check_photo(encode(sources()["rocket"]), "a.jpg", kind=SubjectKind.STYLE, photo_id="a", limits=LIMITS)
    assert first.photo is not None
    stored = first.photo.fingerprint.to_bytes()
    assert len(stored) < 40_000
    restored = Fingerprint.from_bytes(stored)
    assert str(restored.phash) == first.photo.phash
    assert restored.features is not None
    assert len(restored.features.points) == len(first.photo.fingerprint.features.points)  # type: ignore[union-attr]
    for label in ("crop50", "rotate-15", "crop70+hflip"):
        copy = encode(copies("rocket")[label])
        verdict = check_photo(copy, "b.jpg", kind=SubjectKind.STYLE, accepted={"a": restored}, limits=LIMITS)
        assert verdict.reason is RejectReason.DUPLICATE, label


def test_photos_stored_with_a_hash_only_still_catch_turned_copies() -> None:
    original = sources()["coins"]
    first = check_photo(encode(original), "a.jpg", kind=SubjectKind.STYLE, photo_id="a", limits=LIMITS)
    assert first.photo is not None
    legacy = {"a": first.photo.phash}  # a row from before fingerprints: the hash alone
    turned = encode(original.transpose(Image.Transpose.ROTATE_270))
    assert check_photo(turned, "b.jpg", kind=SubjectKind.STYLE, accepted=legacy, limits=LIMITS).reason is (
        RejectReason.DUPLICATE
    )
    cropped = encode(copies("coins")["crop50"])
    assert check_photo(cropped, "c.jpg", kind=SubjectKind.STYLE, accepted=legacy, limits=LIMITS).accepted


def test_dihedral_hashes_are_the_hashes_of_the_turned_images() -> None:
    grey = np.asarray(sources()["camera"].convert("L"))
    hashes = dihedral_hashes(grey)
    assert len(hashes) == 8
    assert hashes[0] == imagehash.phash(Image.fromarray(grey, "L"))
    turned = np.ascontiguousarray(np.rot90(grey))
    assert hashes[1] - imagehash.phash(Image.fromarray(turned, "L")) <= 2
    assert len({str(h) for h in hashes}) == 8


@pytest.mark.parametrize("junk", [b"", b"ATFP1", b"not a fingerprint at all, but long enough to unpack" * 2])
def test_junk_is_not_a_fingerprint(junk: bytes) -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        Fingerprint.from_bytes(junk)


def test_a_sideways_copy_of_a_person_photo_is_called_a_duplicate_not_faceless() -> None:
    checker = PhotoChecker(SubjectKind.PERSON)
    photo = same_person(1, seed=4)[0]
    assert checker.check(encode(photo), "a.jpg", "a").accepted
    sideways = checker.check(encode(photo.transpose(Image.Transpose.ROTATE_90)), "b.jpg", "b")
    assert (sideways.reason, sideways.duplicate_of) == (RejectReason.DUPLICATE, "a")
    faceless = checker.check(encode(sources()["coffee"]), "c.jpg", "c")
    assert faceless.reason is RejectReason.NO_FACE


def _fingerprint(image: Image.Image) -> Fingerprint:
    """What an upload's check computes for the duplicate test (grey analysis copy + colour)."""
    pixels = rgb_array(image.convert("RGB"))
    return Fingerprint.of(analyse(pixels, LIMITS.analysis_side).grey, pixels)


def test_one_face_on_smooth_backgrounds_of_equal_brightness_is_two_photos() -> None:
    # Grey levels alone called these copies: purple and pink walls of one brightness (issue found by
    # bench_dataset_prep); the colour of smooth blocks tells them apart.
    head = sources()["astronaut"].crop(HEAD_BOX)
    close = Image.new("RGB", (640, 480), (100, 60, 190))
    close.paste(head.resize((250, 280)), (200, 60))
    wide = Image.new("RGB", (640, 480), (180, 40, 110))
    wide.paste(head.resize((140, 156)), (420, 300))
    checker = PhotoChecker(SubjectKind.PERSON)
    assert checker.check(encode(close), "close.jpg", "close").accepted
    verdict = checker.check(encode(wide), "wide.jpg", "wide")
    assert verdict.accepted, verdict.message
    copy = checker.check(encode(close.crop((100, 0, 640, 480))), "crop.jpg", "crop")
    assert copy.reason is RejectReason.DUPLICATE
