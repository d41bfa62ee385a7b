"""Per-photo verdicts: every reason code, metadata stripping, orientation, duplicates."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.unit.trainer.images import astronaut, blurred, cat, encode, noise_image, png_header_only
from trainer.dataset import (
    DatasetLimits,
    FaceDetector,
    PhotoChecker,
    RejectReason,
    SubjectKind,
    Upload,
    check_photo,
)
from trainer.dataset import checks as checks_module


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def person_checker(detector: FaceDetector, **limits: object) -> PhotoChecker:
    return PhotoChecker(SubjectKind.PERSON, limits=DatasetLimits(**limits), detector=detector)  # type: ignore[arg-type]


def test_astronaut_is_accepted_with_face_and_clean_copy(detector: FaceDetector) -> None:
    data = encode(astronaut(), "JPEG", quality=92)
    verdict = person_checker(detector).check(data, "me.jpg", "p1")
    assert verdict.accepted, verdict.message
    assert verdict.photo is not None
    face = verdict.photo.face_box
    assert face is not None
    assert 150 < (face.left + face.right) / 2 < 300
    assert 60 < (face.top + face.bottom) / 2 < 180
    image = verdict.photo.image
    assert (image.width, image.height) == (512, 512)
    assert image.sha256 == hashlib.sha256(image.data).hexdigest()
    assert len(verdict.photo.phash) == 16
    json.dumps(verdict.to_dict())


def test_not_an_image(detector: FaceDetector) -> None:
    verdict = person_checker(detector).check(b"%PDF-1.7\n" + b"x" * 2000, "cv.pdf", "p1")
    assert verdict.reason is RejectReason.NOT_AN_IMAGE
    assert not verdict.accepted


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(detector: FaceDetector, fmt: str) -> None:
    data = encode(noise_image(400, 400), fmt)
    verdict = person_checker(detector).check(data[: len(data) // 2], f"half.{fmt.lower()}", "p1")
    assert verdict.reason is RejectReason.TRUNCATED, verdict.message


def test_bomb_header_is_rejected_without_decoding(detector: FaceDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_decode(data: bytes) -> Image.Image:
        raise AssertionError("the pixels of a bomb must not be decoded")

    monkeypatch.setattr(checks_module, "decode_upright_rgb", must_not_decode)
    verdict = person_checker(detector).check(png_header_only(50_000, 50_000), "bomb.png", "p1")
    assert verdict.reason is RejectReason.TOO_MANY_PIXELS
    assert "50000x50000" in verdict.message


def test_too_small(detector: FaceDetector) -> None:
    verdict = person_checker(detector).check(encode(noise_image(300, 200)), "small.jpg", "p1")
    assert verdict.reason is RejectReason.TOO_SMALL
    assert "256" in verdict.message


def test_too_large_in_bytes(detector: FaceDetector) -> None:
    data = encode(noise_image(400, 400), "PNG")
    verdict = person_checker(detector, max_bytes=len(data) - 1).check(data, "big.png", "p1")
    assert verdict.reason is RejectReason.TOO_LARGE


def test_too_many_pixels_by_limit(detector: FaceDetector) -> None:
    verdict = person_checker(detector, max_pixels=300 * 300).check(encode(noise_image(400, 400)), "a.jpg", "p1")
    assert verdict.reason is RejectReason.TOO_MANY_PIXELS


def test_duplicate_names_the_earlier_photo(detector: FaceDetector) -> None:
    checker = person_checker(detector)
    first = checker.check(encode(astronaut(), "PNG"), "a.png", "photo-a")
    assert first.accepted
    near_copy = encode(astronaut().resize((460, 460)), "JPEG", quality=70)
    second = checker.check(near_copy, "b.jpg", "photo-b")
    assert second.reason is RejectReason.DUPLICATE
    assert second.message == "duplicate of photo photo-a"
    assert second.duplicate_of == "photo-a"


def test_duplicate_of_a_photo_accepted_earlier(detector: FaceDetector) -> None:
    first = check_photo(encode(astronaut()), "a.jpg", kind=SubjectKind.PERSON, photo_id="old", detector=detector)
    assert first.photo is not None
    again = check_photo(
        encode(astronaut()),
        "a.jpg",
        kind=SubjectKind.PERSON,
        photo_id="new",
        accepted={"old": first.photo.phash},
        detector=detector,
    )
    assert again.reason is RejectReason.DUPLICATE


def test_different_photos_are_not_duplicates() -> None:
    checker = PhotoChecker(SubjectKind.STYLE)
    assert checker.check(encode(cat()), "cat.jpg", "c").accepted
    assert checker.check(encode(astronaut()), "astro.jpg", "a").accepted
    assert checker.check(encode(noise_image(400, 300)), "noise.jpg", "n").accepted


def test_no_face_for_person_but_fine_for_a_style(detector: FaceDetector) -> None:
    data = encode(cat().resize((451 * 2, 300 * 2)))
    assert person_checker(detector).check(data, "cat.jpg", "p1").reason is RejectReason.NO_FACE
    style = PhotoChecker(SubjectKind.STYLE).check(data, "cat.jpg", "p1")
    assert style.accepted, style.message
    assert style.photo is not None
    assert style.photo.face_box is None


@pytest.mark.parametrize("image", [blurred(astronaut()), Image.new("RGB", (400, 400), (120, 130, 140))])
def test_too_blurry(detector: FaceDetector, image: Image.Image) -> None:
    verdict = person_checker(detector).check(encode(image), "soft.jpg", "p1")
    assert verdict.reason is RejectReason.TOO_BLURRY


def test_photo_count_limit(detector: FaceDetector) -> None:
    checker = PhotoChecker(SubjectKind.PRODUCT, limits=DatasetLimits(max_photos=2))
    verdicts = [checker.check(encode(noise_image(300, 300, seed=i)), f"{i}.jpg", str(i)) for i in range(3)]
    assert [v.reason for v in verdicts] == [None, None, RejectReason.TOO_MANY_PHOTOS]
    assert checker.accepted_count == 2


def test_check_many_keeps_order_and_catches_duplicates_in_the_batch(detector: FaceDetector) -> None:
    uploads = [
        Upload(encode(astronaut()), "a.jpg", "a"),
        Upload(b"not an image", "b.txt", "b"),
        Upload(encode(astronaut(), "PNG"), "c.png", "c"),
        Upload(encode(cat().resize((600, 400))), "d.jpg", "d"),
    ]
    verdicts = person_checker(detector).check_many(uploads, workers=2)
    assert [v.photo_id for v in verdicts] == ["a", "b", "c", "d"]
    assert [v.reason for v in verdicts] == [
        None,
        RejectReason.NOT_AN_IMAGE,
        RejectReason.DUPLICATE,
        RejectReason.NO_FACE,
    ]


def _jpeg_with_orientation_and_gps() -> bytes:
    image = Image.new("RGB", (400, 300), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 60))  # marker in the stored top-left corner
    image.paste(noise_image(200, 150), (150, 100))  # texture so that the photo is not "blurry"
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored image rotated 90 degrees clockwise
    exif[0x010F] = "ACME camera"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def test_orientation_applied_and_metadata_stripped() -> None:
    data = _jpeg_with_orientation_and_gps()
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(0x8825), "the fixture must carry GPS data"
    verdict = PhotoChecker(SubjectKind.PRODUCT).check(data, "gps.jpg", "p1")
    assert verdict.photo is not None, verdict.message
    cleaned = verdict.photo.image
    assert (cleaned.width, cleaned.height) == (300, 400)
    assert b"Exif" not in cleaned.data
    assert b"ACME" not in cleaned.data
    with Image.open(io.BytesIO(cleaned.data)) as stored:
        assert stored.format == "JPEG"
        assert len(stored.getexif()) == 0
        assert "exif" not in stored.info
        red, green, blue = stored.convert("RGB").getpixel((290, 10))  # type: ignore[misc]
    assert (red > 200, green < 60, blue < 60) == (True, True, True), "the top-left marker must end up top-right"


def test_png_text_chunks_are_dropped() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    data = encode(noise_image(300, 300), "PNG", pnginfo=info)
    verdict = PhotoChecker(SubjectKind.STYLE).check(data, "a.png", "p1")
    assert verdict.photo is not None
    assert verdict.photo.image.format.value == "png"
    assert b"secret location" not in verdict.photo.image.data


def test_alpha_is_composited_on_white() -> None:
    image = noise_image(300, 300).convert("RGBA")
    image.paste((0, 0, 0, 0), (0, 0, 100, 100))  # fully transparent black corner
    verdict = PhotoChecker(SubjectKind.CHARACTER).check(encode(image, "PNG"), "a.png", "p1")
    assert verdict.photo is not None, verdict.message
    with Image.open(io.BytesIO(verdict.photo.image.data)) as stored:
        assert stored.mode == "RGB"
        assert stored.getpixel((10, 10)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("CMYK", "JPEG"), ("RGBA", "WEBP")],
)
def test_image_modes_become_rgb(mode: str, fmt: str) -> None:
    image = noise_image(300, 300).convert("L" if mode == "I;16" else mode)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
        assert image.mode.startswith("I")
    if mode == "P":
        image.info["transparency"] = 0
    verdict = PhotoChecker(SubjectKind.STYLE).check(encode(image, fmt), f"a.{fmt.lower()}", "p1")
    assert verdict.photo is not None, verdict.message
    with Image.open(io.BytesIO(verdict.photo.image.data)) as stored:
        assert stored.mode == "RGB"
