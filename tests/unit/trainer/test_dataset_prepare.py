"""Dataset preparation: sd-scripts folder layout, captions, crops, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.support.dedupe_set import same_person
from tests.unit.trainer.images import astronaut, encode, noise_image
from trainer.dataset import (
    CaptionTemplate,
    CropMode,
    DatasetError,
    DatasetManifest,
    DatasetPhoto,
    PhotoChecker,
    PrepareOptions,
    SubjectKind,
    prepare_dataset,
)


def checked_person_photos() -> list[DatasetPhoto]:
    """Two accepted person photos: the astronaut on a wide canvas, and her head in another scene (a rotated
    copy of the first would be a duplicate of it).
    """
    wide = Image.new("RGB", (1200, 700), (30, 60, 90))
    wide.paste(noise_image(1200, 200), (0, 500))
    wide.paste(astronaut(), (600, 50))
    checker = PhotoChecker(SubjectKind.PERSON)
    photos = []
    for photo_id, image in [("wide", wide), ("plain", same_person(1)[0])]:
        verdict = checker.check(encode(image), f"{photo_id}.jpg", photo_id)
        assert verdict.photo is not None, verdict.message
        photos.append(DatasetPhoto(photo_id, verdict.photo.image.data, verdict.photo.face_box))
    return photos


def test_person_dataset_layout_captions_and_manifest(tmp_path: Path) -> None:
    photos = checked_person_photos()
    root = tmp_path / "dataset"
    manifest = prepare_dataset(
        root,
        photos,
        trigger="zxq",
        kind=SubjectKind.PERSON,
        options=PrepareOptions(resolution=512, repeats=8, class_word="man"),
        user_captions={"plain": "in a space suit"},
    )
    folder = root / "8_zxq man"
    assert manifest.image_dir == "8_zxq man"
    assert manifest.class_tokens == "zxq man"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["000_wide.jpg", "000_wide.txt", "001_plain.jpg", "001_plain.txt"]
    assert (folder / "000_wide.txt").read_text() == "zxq man\n"
    assert (folder / "001_plain.txt").read_text() == "zxq man, in a space suit\n"
    for entry in manifest.entries:
        with Image.open(root / entry.file) as image:
            assert image.size == (512, 512)
    wide = manifest.entries[0]
    left, top, right, bottom = wide.crop_box
    assert right - left == bottom - top
    assert left >= 500, "the crop must follow the face, which is in the right half"
    stored = json.loads((root / "manifest.json").read_text())
    assert DatasetManifest.from_dict(stored) == manifest


def test_face_is_detected_when_not_given(tmp_path: Path) -> None:
    photos = [DatasetPhoto(p.photo_id, p.data) for p in checked_person_photos()]
    manifest = prepare_dataset(
        tmp_path / "ds", photos, trigger="zxq", kind=SubjectKind.PERSON, options=PrepareOptions(resolution=256)
    )
    assert manifest.entries[0].crop_box[0] >= 500


def test_product_uses_centre_crop_and_template(tmp_path: Path) -> None:
    photo = DatasetPhoto("mug", encode(noise_image(900, 600)))
    options = PrepareOptions(resolution=256, repeats=3, template=CaptionTemplate("a photo of {trigger} {class}"))
    manifest = prepare_dataset(tmp_path / "ds", [photo], trigger="mugx", kind=SubjectKind.PRODUCT, options=options)
    entry = manifest.entries[0]
    assert entry.crop_box == [150, 0, 750, 600]
    assert entry.caption == "a photo of mugx product"
    assert manifest.crop_mode == "center"


def test_bucket_mode_keeps_aspect(tmp_path: Path) -> None:
    photo = DatasetPhoto("wide", encode(noise_image(1600, 800)))
    options = PrepareOptions(resolution=512, crop_mode=CropMode.BUCKET)
    manifest = prepare_dataset(tmp_path / "ds", [photo], trigger="stx", kind=SubjectKind.STYLE, options=options)
    entry = manifest.entries[0]
    assert manifest.bucketed
    assert entry.width % 64 == 0
    assert entry.height % 64 == 0
    assert entry.width > entry.height


def test_refuses_a_used_directory_and_bad_inputs(tmp_path: Path) -> None:
    photo = DatasetPhoto("a", encode(noise_image(300, 300)))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "old.txt").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        prepare_dataset(tmp_path / "used", [photo], trigger="stx", kind=SubjectKind.STYLE)
    with pytest.raises(DatasetError, match="photos"):
        prepare_dataset(tmp_path / "none", [], trigger="stx", kind=SubjectKind.STYLE)
    with pytest.raises(DatasetError, match="unique"):
        prepare_dataset(tmp_path / "dup", [photo, photo], trigger="stx", kind=SubjectKind.STYLE)
    broken = DatasetPhoto("x", b"\xff\xd8\xff\xe0")
    with pytest.raises(DatasetError, match="cannot be decoded"):
        prepare_dataset(tmp_path / "bad", [broken], trigger="stx", kind=SubjectKind.STYLE)
