"""Photo checks and dataset preparation for LoRA training.

Upload time: :class:`PhotoChecker` (or :func:`check_photo`) gives each file a :class:`PhotoVerdict`, with the
cleaned, metadata-free image when accepted. Training time: :func:`prepare_dataset` crops, resizes and captions
the accepted photos into the folder layout sd-scripts reads and returns a :class:`DatasetManifest`; the
transformers-based :class:`~trainer.dataset.captioner.TransformersCaptioner` writes ``auto`` captions.
"""

from trainer.dataset.captions import (
    DEFAULT_CLASS_WORDS,
    Captioner,
    CaptionError,
    CaptionMode,
    CaptionSource,
    CaptionTemplate,
    build_captions,
    check_trigger_word,
    class_word_for,
)
from trainer.dataset.checks import CheckedPhoto, PhotoChecker, PhotoVerdict, RejectReason, Upload, check_photo
from trainer.dataset.crop import CropMode
from trainer.dataset.faces import Box, FaceDetector
from trainer.dataset.images import EncodedImage
from trainer.dataset.limits import DEFAULT_LIMITS, DatasetLimits, SubjectKind
from trainer.dataset.manifest import DatasetManifest, ManifestEntry, dataset_folder_name
from trainer.dataset.prepare import DatasetError, DatasetPhoto, PrepareOptions, ProgressCallback, prepare_dataset
from trainer.dataset.probe import ImageFormat, ImageHeader, probe_image

__all__ = [
    "DEFAULT_CLASS_WORDS",
    "DEFAULT_LIMITS",
    "Box",
    "CaptionError",
    "CaptionMode",
    "CaptionSource",
    "CaptionTemplate",
    "Captioner",
    "CheckedPhoto",
    "CropMode",
    "DatasetError",
    "DatasetLimits",
    "DatasetManifest",
    "DatasetPhoto",
    "EncodedImage",
    "FaceDetector",
    "ImageFormat",
    "ImageHeader",
    "ManifestEntry",
    "PhotoChecker",
    "PhotoVerdict",
    "PrepareOptions",
    "ProgressCallback",
    "RejectReason",
    "SubjectKind",
    "Upload",
    "build_captions",
    "check_photo",
    "check_trigger_word",
    "class_word_for",
    "dataset_folder_name",
    "prepare_dataset",
    "probe_image",
]
