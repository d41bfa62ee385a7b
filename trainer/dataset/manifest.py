"""The prepared dataset: images and captions laid out for sd-scripts, and the manifest describing them."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from trainer.dataset.captions import Captioner, CaptionTemplate, check_trigger_word, class_word_for
from trainer.dataset.crop import CropMode, crop_and_resize, plan_crop
from trainer.dataset.faces import Box, FaceDetector
from trainer.dataset.images import DecodeError, analyse, decode_upright_rgb, rgb_array
from trainer.dataset.limits import DEFAULT_LIMITS, DatasetLimits, SubjectKind

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
TRAINING_JPEG_QUALITY = 95


class DatasetError(ValueError):
    """The photos cannot make a dataset (too few, unreadable, bad options)."""


@dataclass(frozen=True)
class DatasetPhoto:
    """One accepted photo going into a dataset: its stored (cleaned) bytes and, if known, its face box."""

    photo_id: str
    data: bytes
    face_box: Box | None = None


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

    @property
    def class_tokens(self) -> str:
        """sd-scripts' ``class_tokens`` for the subset: trigger and class word."""
        return f"{self.trigger} {self.class_word}"

    @property
    def bucketed(self) -> bool:
        """Whether images keep their aspect ratio (sd-scripts needs ``enable_bucket``)."""
        return self.crop_mode == CropMode.BUCKET.value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict form (JSON types only)."""
        return asdict(self)

    def to_json(self) -> str:
        """Indented JSON."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetManifest:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["entries"] = [ManifestEntry(**entry) for entry in values.get("entries", [])]
        return cls(**values)


def dataset_folder_name(repeats: int, trigger: str, class_word: str) -> str:
    """sd-scripts' DreamBooth folder convention: ``<repeats>_<trigger> <class>``."""
    return f"{repeats}_{trigger} {class_word}"


def _safe_stem(index: int, photo_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", photo_id).strip("-")[:48]
    return f"{index:03d}_{cleaned or 'photo'}"


@dataclass(frozen=True)
class PrepareOptions:
    """How photos become training images."""

    resolution: int = 1024
    repeats: int = 10
    crop_mode: CropMode | None = None  # None: face crop for people, centre crop otherwise
    class_word: str | None = None
    template: CaptionTemplate | None = None
    limits: DatasetLimits = DEFAULT_LIMITS

    def mode_for(self, kind: SubjectKind) -> CropMode:
        """The crop mode to use for a subject kind."""
        if self.crop_mode is not None:
            return self.crop_mode
        return CropMode.FACE if kind is SubjectKind.PERSON else CropMode.CENTER


@dataclass(frozen=True)
class _Context:
    root: Path
    image_dir: Path
    trigger: str
    class_word: str
    mode: CropMode
    opts: PrepareOptions
    template: CaptionTemplate
    captions: Mapping[str, str]
    captioner: Captioner | None
    detector: FaceDetector | None


def prepare_dataset(
    root: Path,
    photos: Sequence[DatasetPhoto],
    *,
    trigger: str,
    kind: SubjectKind,
    options: PrepareOptions | None = None,
    user_captions: Mapping[str, str] | None = None,
    captioner: Captioner | None = None,
    detector: FaceDetector | None = None,
    workers: int = 1,
) -> DatasetManifest:
    """Write the dataset under ``root`` the way sd-scripts expects and return (and save) its manifest.

    Layout: ``<root>/<repeats>_<trigger> <class>/<nnn>_<photo id>.jpg`` with a ``.txt`` caption beside each
    image, and ``<root>/manifest.json``. ``root`` must not hold an earlier dataset. A photo's caption is
    the template filled with the user's caption, else with the captioner's description (when a captioner
    is given), else with nothing (trigger and class word only). ``workers`` > 1 processes photos in threads.
    """
    opts = options or PrepareOptions()
    captions = dict(user_captions or {})
    _check_inputs(root, photos, trigger, opts, captions)
    mode = opts.mode_for(kind)
    if mode is CropMode.FACE and detector is None and any(p.face_box is None for p in photos):
        detector = FaceDetector()
    word = class_word_for(kind, opts.class_word)
    image_dir = root / dataset_folder_name(opts.repeats, trigger, word)
    image_dir.mkdir(parents=True)
    ctx = _Context(
        root, image_dir, trigger, word, mode, opts, opts.template or CaptionTemplate(), captions, captioner, detector
    )
    jobs = list(enumerate(photos))
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            entries = list(pool.map(lambda job: _write_one(ctx, *job), jobs))
    else:
        entries = [_write_one(ctx, index, photo) for index, photo in jobs]
    manifest = DatasetManifest(
        image_dir=image_dir.name,
        trigger=trigger,
        class_word=word,
        kind=kind.value,
        repeats=opts.repeats,
        resolution=opts.resolution,
        crop_mode=mode.value,
        entries=entries,
    )
    (root / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def _check_inputs(
    root: Path, photos: Sequence[DatasetPhoto], trigger: str, opts: PrepareOptions, captions: Mapping[str, str]
) -> None:
    check_trigger_word(trigger)
    limits = opts.limits
    if not limits.min_photos <= len(photos) <= limits.max_photos:
        raise DatasetError(f"{len(photos)} photos; a dataset needs {limits.min_photos}-{limits.max_photos}")
    ids = {p.photo_id for p in photos}
    if len(ids) != len(photos):
        raise DatasetError("photo ids must be unique")
    unknown = sorted(set(captions) - ids)
    if unknown:
        raise DatasetError(f"captions given for unknown photos: {unknown}")
    if not 64 <= opts.resolution <= 4096 or opts.resolution % 8:
        raise DatasetError(f"resolution {opts.resolution} must be a multiple of 8 between 64 and 4096")
    if not 1 <= opts.repeats <= 1000:
        raise DatasetError(f"repeats {opts.repeats} must be between 1 and 1000")
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"dataset directory {root} is not empty")


def _write_one(ctx: _Context, index: int, photo: DatasetPhoto) -> ManifestEntry:
    try:
        pixels = rgb_array(decode_upright_rgb(photo.data))
    except DecodeError as exc:
        raise DatasetError(f"photo {photo.photo_id} cannot be decoded: {exc}") from exc
    height, width = pixels.shape[:2]
    face = photo.face_box
    if ctx.mode is CropMode.FACE and face is None and ctx.detector is not None:
        face = ctx.detector.largest_face(analyse(pixels, ctx.opts.limits.analysis_side))
    box, size = plan_crop(
        width,
        height,
        mode=ctx.mode,
        resolution=ctx.opts.resolution,
        face=face,
        margin=ctx.opts.limits.face_margin,
    )
    out = Image.fromarray(crop_and_resize(pixels, box, size), "RGB")
    text = ctx.captions.get(photo.photo_id, "")
    if not text.strip() and ctx.captioner is not None:
        text = ctx.captioner.describe(out)
    caption = ctx.template.render(trigger=ctx.trigger, class_word=ctx.class_word, caption=text)
    buffer = io.BytesIO()
    out.save(buffer, "JPEG", quality=TRAINING_JPEG_QUALITY, subsampling=0)
    data = buffer.getvalue()
    stem = _safe_stem(index, photo.photo_id)
    (ctx.image_dir / f"{stem}.jpg").write_bytes(data)
    (ctx.image_dir / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
    return ManifestEntry(
        photo_id=photo.photo_id,
        file=f"{ctx.image_dir.name}/{stem}.jpg",
        caption_file=f"{ctx.image_dir.name}/{stem}.txt",
        source_sha256=hashlib.sha256(photo.data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        caption=caption,
        crop_box=box.as_list(),
        width=size[0],
        height=size[1],
    )
