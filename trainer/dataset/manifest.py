"""The prepared dataset's manifest: what sd-scripts will read (files, captions, crops) and where it came from.

Fields added after version 1 (``caption_source`` per entry, ``caption_mode`` and ``captioner``) are optional
and left out of :meth:`DatasetManifest.to_dict` while unset, so a version-1 manifest loads and hashes exactly
as it did when it was written (a run prepared then can still be resumed; its recorded hash still matches).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from trainer.dataset.crop import CropMode

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 2
_OPTIONAL_FIELDS = ("caption_source", "caption_mode", "captioner")


@dataclass(frozen=True)
class ManifestEntry:
    """One training image: where it is (relative to the dataset root), its source, caption and crop."""

    photo_id: str
    file: str
    caption_file: str
    source_sha256: str
    sha256: str
    caption: str
    crop_box: list[int]
    width: int
    height: int
    caption_source: str | None = None  # user | auto | none (trainer.dataset.captions.CaptionSource)


@dataclass(frozen=True)
class DatasetManifest:
    """What :func:`prepare_dataset` wrote; JSON-serialisable with :meth:`to_dict`/:meth:`to_json`."""

    image_dir: str
    trigger: str
    class_word: str
    kind: str
    repeats: int
    resolution: int
    crop_mode: str
    entries: list[ManifestEntry] = field(default_factory=list)
    version: int = MANIFEST_VERSION
    caption_mode: str | None = None  # auto | trigger | manual
    captioner: str | None = None  # the model that wrote the ``auto`` captions

    @property
    def class_tokens(self) -> str:
        """sd-scripts' ``class_tokens`` for the subset: trigger and class word."""
        return f"{self.trigger} {self.class_word}"

    @property
    def bucketed(self) -> bool:
        """Whether images keep their aspect ratio (sd-scripts needs ``enable_bucket``)."""
        return self.crop_mode == CropMode.BUCKET.value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict form (JSON types only); unset optional fields are left out (see the module docstring)."""
        data = _without_unset(asdict(self))
        data["entries"] = [_without_unset(entry) for entry in data["entries"]]
        return data

    def to_json(self) -> str:
        """Indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetManifest:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["entries"] = [ManifestEntry(**entry) for entry in values.get("entries", [])]
        return cls(**values)


def _without_unset(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if not (key in _OPTIONAL_FIELDS and value is None)}


def dataset_folder_name(repeats: int, trigger: str, class_word: str) -> str:
    """sd-scripts' DreamBooth folder convention: ``<repeats>_<trigger> <class>``."""
    return f"{repeats}_{trigger} {class_word}"
