"""Dataset preparation: accepted photos -> cropped training images and captions in sd-scripts' folder layout.

Three stages, so that a captioning model sees every photo it describes in batches (one model call per batch
instead of one per photo) while memory stays bounded: (1) crop, resize and write every training image (in
``workers`` threads); (2) describe, in batches read back from those files, the photos that need a written
caption (mode ``auto``, photos without a user caption), reporting ``captioning`` progress after each batch;
(3) render every caption through the template (trigger word first) and write the ``.txt`` files and manifest.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from PIL import Image

from trainer.dataset.captions import (
    Captioner,
    CaptionMode,
    CaptionSource,
    CaptionTemplate,
    check_trigger_word,
    class_word_for,
)
from trainer.dataset.crop import CropMode, crop_and_resize, plan_crop
from trainer.dataset.faces import Box, FaceDetector
from trainer.dataset.images import DecodeError, analyse, decode_upright_rgb, rgb_array
from trainer.dataset.limits import DEFAULT_LIMITS, DatasetLimits, SubjectKind
from trainer.dataset.manifest import MANIFEST_NAME, DatasetManifest, ManifestEntry, dataset_folder_name

TRAINING_JPEG_QUALITY = 95
CAPTIONING_STAGE = "captioning"

ProgressCallback = Callable[[str, int, int], None]
"""``(stage, done, total)``; called from the preparing thread, in order."""

_T = TypeVar("_T")
_R = TypeVar("_R")


class DatasetError(ValueError):
    """The photos cannot make a dataset (too few, unreadable, bad options, captions missing)."""


@dataclass(frozen=True)
class DatasetPhoto:
    """One accepted photo going into a dataset: its stored (cleaned) bytes and, if known, its face box."""

    photo_id: str
    data: bytes
    face_box: Box | None = None


@dataclass(frozen=True)
class PrepareOptions:
    """How photos become training images and captions."""

    resolution: int = 1024
    repeats: int = 10
    crop_mode: CropMode | None = None  # None: face crop for people, centre crop otherwise
    class_word: str | None = None
    template: CaptionTemplate | None = None
    limits: DatasetLimits = DEFAULT_LIMITS
    caption_mode: CaptionMode | None = None  # None: auto when a captioner is given, else trigger
    caption_batch_size: int = 8

    def mode_for(self, kind: SubjectKind) -> CropMode:
        """The crop mode to use for a subject kind."""
        if self.crop_mode is not None:
            return self.crop_mode
        return CropMode.FACE if kind is SubjectKind.PERSON else CropMode.CENTER


@dataclass(frozen=True)
class _Context:
    root: Path
    image_dir: Path
    mode: CropMode
    opts: PrepareOptions
    detector: FaceDetector | None


def _safe_stem(index: int, photo_id: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", photo_id).strip("-")[:48]
    return f"{index:03d}_{cleaned or 'photo'}"


def _map(workers: int, func: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    if workers <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, items))


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
    on_progress: ProgressCallback | None = None,
) -> DatasetManifest:
    """Write the dataset under ``root`` the way sd-scripts expects and return (and save) its manifest.

    Layout: ``<root>/<repeats>_<trigger> <class>/<nnn>_<photo id>.jpg`` with a ``.txt`` caption beside each
    image, and ``<root>/manifest.json``. ``root`` must not hold an earlier dataset. A photo's caption is the
    template filled with the user's caption, else (mode ``auto``) with the captioner's description, else with
    nothing (trigger and class word only). ``workers`` > 1 crops photos in threads.
    """
    opts = options or PrepareOptions()
    captions = {pid: text for pid, text in (user_captions or {}).items() if text.strip()}
    caption_mode = opts.caption_mode or (CaptionMode.AUTO if captioner is not None else CaptionMode.TRIGGER)
    _check_inputs(root, photos, trigger, opts, captions)
    _check_caption_mode(caption_mode, photos, captions, captioner)
    mode = opts.mode_for(kind)
    if mode is CropMode.FACE and detector is None and any(p.face_box is None for p in photos):
        detector = FaceDetector()
    word = class_word_for(kind, opts.class_word)
    image_dir = root / dataset_folder_name(opts.repeats, trigger, word)
    image_dir.mkdir(parents=True)
    ctx = _Context(root, image_dir, mode, opts, detector)
    entries = _map(workers, lambda job: _write_image(ctx, *job), list(enumerate(photos)))
    described: dict[str, str] = {}
    if caption_mode is CaptionMode.AUTO and captioner is not None:
        wanted = [entry for entry in entries if entry.photo_id not in captions]
        described = _describe(root, wanted, captioner, opts.caption_batch_size, on_progress)
    template = opts.template or CaptionTemplate()
    entries = [_write_caption(root, entry, template, trigger, word, captions, described) for entry in entries]
    manifest = DatasetManifest(
        image_dir=image_dir.name,
        trigger=trigger,
        class_word=word,
        kind=kind.value,
        repeats=opts.repeats,
        resolution=opts.resolution,
        crop_mode=mode.value,
        entries=entries,
        caption_mode=caption_mode.value,
        captioner=captioner.name if caption_mode is CaptionMode.AUTO and captioner is not None else None,
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
    if opts.caption_batch_size < 1:
        raise DatasetError(f"caption batch size {opts.caption_batch_size} must be at least 1")
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"dataset directory {root} is not empty")


def _check_caption_mode(
    mode: CaptionMode, photos: Sequence[DatasetPhoto], captions: Mapping[str, str], captioner: Captioner | None
) -> None:
    if mode is CaptionMode.AUTO and captioner is None:
        raise DatasetError("caption mode auto needs a captioner")
    if mode is CaptionMode.MANUAL:
        missing = [p.photo_id for p in photos if p.photo_id not in captions]
        if missing:
            raise DatasetError(f"caption mode manual: photos without a caption: {missing}")


def _write_image(ctx: _Context, index: int, photo: DatasetPhoto) -> ManifestEntry:
    """Stage 1: crop and resize one photo and write its training image (the caption comes later)."""
    try:
        pixels = rgb_array(decode_upright_rgb(photo.data))
    except DecodeError as exc:
        raise DatasetError(f"photo {photo.photo_id} cannot be decoded: {exc}") from exc
    height, width = pixels.shape[:2]
    face = photo.face_box
    if ctx.mode is CropMode.FACE and face is None and ctx.detector is not None:
        face = ctx.detector.largest_face(analyse(pixels, ctx.opts.limits.analysis_side))
    box, size = plan_crop(
        width, height, mode=ctx.mode, resolution=ctx.opts.resolution, face=face, margin=ctx.opts.limits.face_margin
    )
    buffer = io.BytesIO()
    Image.fromarray(crop_and_resize(pixels, box, size), "RGB").save(
        buffer, "JPEG", quality=TRAINING_JPEG_QUALITY, subsampling=0
    )
    data = buffer.getvalue()
    stem = _safe_stem(index, photo.photo_id)
    (ctx.image_dir / f"{stem}.jpg").write_bytes(data)
    return ManifestEntry(
        photo_id=photo.photo_id,
        file=f"{ctx.image_dir.name}/{stem}.jpg",
        caption_file=f"{ctx.image_dir.name}/{stem}.txt",
        source_sha256=hashlib.sha256(photo.data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        caption="",
        crop_box=box.as_list(),
        width=size[0],
        height=size[1],
    )


def _describe(
    root: Path,
    entries: Sequence[ManifestEntry],
    captioner: Captioner,
    batch_size: int,
    on_progress: ProgressCallback | None,
) -> dict[str, str]:
    """Stage 2: the captioner's description of each entry's training image, ``batch_size`` images a call."""
    total = len(entries)
    described: dict[str, str] = {}
    if on_progress is not None and total:
        on_progress(CAPTIONING_STAGE, 0, total)
    for start in range(0, total, batch_size):
        batch = entries[start : start + batch_size]
        images = []
        for entry in batch:
            with Image.open(root / entry.file) as image:
                images.append(image.convert("RGB"))
        texts = captioner.describe_batch(images)
        if len(texts) != len(batch):
            raise DatasetError(f"the captioner gave {len(texts)} descriptions for {len(batch)} images")
        described.update((entry.photo_id, text) for entry, text in zip(batch, texts, strict=True))
        if on_progress is not None:
            on_progress(CAPTIONING_STAGE, start + len(batch), total)
    return described


def _write_caption(
    root: Path,
    entry: ManifestEntry,
    template: CaptionTemplate,
    trigger: str,
    class_word: str,
    user: Mapping[str, str],
    described: Mapping[str, str],
) -> ManifestEntry:
    """Stage 3: the photo's caption (user's, else described, else none) through the template, on disk."""
    if entry.photo_id in user:
        text, source = user[entry.photo_id], CaptionSource.USER
    elif described.get(entry.photo_id, "").strip():
        text, source = described[entry.photo_id], CaptionSource.AUTO
    else:
        text, source = "", CaptionSource.NONE
    caption = template.render(trigger=trigger, class_word=class_word, caption=text)
    (root / entry.caption_file).write_text(caption + "\n", encoding="utf-8")
    return replace(entry, caption=caption, caption_source=source.value)
