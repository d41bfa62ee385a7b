"""Caption modes in dataset preparation: who writes each caption, in batches, with progress, in the manifest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from tests.unit.trainer.images import encode, noise_image
from trainer.dataset import (
    CaptionMode,
    CaptionTemplate,
    DatasetError,
    DatasetManifest,
    DatasetPhoto,
    PrepareOptions,
    SubjectKind,
    prepare_dataset,
)
from trainer.dataset.manifest import MANIFEST_NAME


class Describes:
    """A captioner that says which image it saw (its mean colour) and remembers the batches it got."""

    name = "test/describes"

    def __init__(self, texts: dict[int, str] | None = None) -> None:
        self.batches: list[list[tuple[int, int]]] = []
        self.texts = texts or {}

    def describe_batch(self, images: Sequence[Image.Image]) -> list[str]:
        self.batches.append([image.size for image in images])
        start = sum(len(batch) for batch in self.batches[:-1])
        return [self.texts.get(start + n, f"a textured square {start + n}") for n in range(len(images))]


def _photos(count: int) -> list[DatasetPhoto]:
    return [DatasetPhoto(f"p{i}", encode(noise_image(300, 300, seed=i))) for i in range(count)]


def _prepare(tmp_path: Path, photos: list[DatasetPhoto], **kwargs: object) -> DatasetManifest:
    options = kwargs.pop("options", PrepareOptions(resolution=128))
    assert isinstance(options, PrepareOptions)
    return prepare_dataset(
        tmp_path / "ds",
        photos,
        trigger="stx",
        kind=SubjectKind.STYLE,
        options=options,
        **kwargs,  # type: ignore[arg-type]
    )


def test_auto_describes_uncaptioned_photos_in_batches_with_the_trigger_first(tmp_path: Path) -> None:
    captioner = Describes()
    progress: list[tuple[str, int, int]] = []
    manifest = _prepare(
        tmp_path,
        _photos(5),
        options=PrepareOptions(resolution=128, caption_batch_size=2),
        user_captions={"p1": "given by the user"},
        captioner=captioner,
        on_progress=lambda stage, done, total: progress.append((stage, done, total)),
    )
    assert captioner.batches == [[(128, 128)] * 2, [(128, 128)] * 2]  # p1 is not described: the user's wins
    captions = [entry.caption for entry in manifest.entries]
    assert captions == [
        "stx style, a textured square 0",
        "stx style, given by the user",
        "stx style, a textured square 1",
        "stx style, a textured square 2",
        "stx style, a textured square 3",
    ]
    assert [e.caption_source for e in manifest.entries] == ["auto", "user", "auto", "auto", "auto"]
    assert progress == [("captioning", 0, 4), ("captioning", 2, 4), ("captioning", 4, 4)]
    assert (manifest.caption_mode, manifest.captioner) == ("auto", "test/describes")
    for entry in manifest.entries:
        assert (tmp_path / "ds" / entry.caption_file).read_text(encoding="utf-8") == entry.caption + "\n"
    stored = json.loads((tmp_path / "ds" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert DatasetManifest.from_dict(stored) == manifest
    assert stored["version"] == 2


def test_an_empty_description_leaves_trigger_and_class_word(tmp_path: Path) -> None:
    manifest = _prepare(tmp_path, _photos(2), captioner=Describes({1: ""}))
    assert [e.caption for e in manifest.entries] == ["stx style, a textured square 0", "stx style"]
    assert [e.caption_source for e in manifest.entries] == ["auto", "none"]


def test_templates_keep_the_trigger_word_first_around_descriptions(tmp_path: Path) -> None:
    options = PrepareOptions(resolution=128, template=CaptionTemplate("{trigger}, {caption}, in the style of {class}"))
    manifest = _prepare(tmp_path, _photos(1), options=options, captioner=Describes())
    assert manifest.entries[0].caption == "stx, a textured square 0, in the style of style"


def test_trigger_mode_does_not_call_the_captioner(tmp_path: Path) -> None:
    captioner = Describes()
    options = PrepareOptions(resolution=128, caption_mode=CaptionMode.TRIGGER)
    manifest = _prepare(tmp_path, _photos(2), options=options, captioner=captioner, user_captions={"p0": "mine"})
    assert captioner.batches == []
    assert [e.caption for e in manifest.entries] == ["stx style, mine", "stx style"]
    assert [e.caption_source for e in manifest.entries] == ["user", "none"]
    assert (manifest.caption_mode, manifest.captioner) == ("trigger", None)


def test_manual_mode_needs_a_caption_for_every_photo(tmp_path: Path) -> None:
    options = PrepareOptions(resolution=128, caption_mode=CaptionMode.MANUAL)
    with pytest.raises(DatasetError, match=r"photos without a caption: \['p1'\]"):
        _prepare(tmp_path / "a", _photos(2), options=options, user_captions={"p0": "mine", "p1": "  "})
    manifest = _prepare(tmp_path / "b", _photos(2), options=options, user_captions={"p0": "mine", "p1": "yours"})
    assert [e.caption_source for e in manifest.entries] == ["user", "user"]


def test_auto_mode_without_a_captioner_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="needs a captioner"):
        _prepare(tmp_path, _photos(1), options=PrepareOptions(resolution=128, caption_mode=CaptionMode.AUTO))


def test_a_captioner_that_miscounts_is_refused(tmp_path: Path) -> None:
    class Short(Describes):
        def describe_batch(self, images: Sequence[Image.Image]) -> list[str]:
            return super().describe_batch(images)[:-1]

    with pytest.raises(DatasetError, match="1 descriptions for 2 images"):
        _prepare(tmp_path, _photos(2), captioner=Short())


def test_a_version_1_manifest_loads_and_serialises_unchanged() -> None:
    entry = {
        "photo_id": "a",
        "file": "10_zxq person/000_a.jpg",
        "caption_file": "10_zxq person/000_a.txt",
        "source_sha256": "0" * 64,
        "sha256": "1" * 64,
        "caption": "zxq person",
        "crop_box": [0, 0, 10, 10],
        "width": 64,
        "height": 64,
    }
    old = {
        "image_dir": "10_zxq person",
        "trigger": "zxq",
        "class_word": "person",
        "kind": "person",
        "repeats": 10,
        "resolution": 64,
        "crop_mode": "face",
        "entries": [entry],
        "version": 1,
    }
    manifest = DatasetManifest.from_dict(old)
    assert manifest.entries[0].caption_source is None
    assert manifest.to_dict() == old  # same canonical hash: a run prepared then can still be resumed
