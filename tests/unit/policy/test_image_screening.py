"""The image classifier as the wheel ships it, on benign images: scikit-image's samples and the photos the
project's tests use. No fake: the blocking path is reached by a threshold that makes every image explicit."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from orchestrator.policy.screening import ImageScreener, blurred_copy, classifier
from tests.unit.trainer.images import astronaut, blurred, cat, encode, noise_image

DEFAULT_THRESHOLD = 0.6
# the samples that ship inside scikit-image's wheel (others need a download)
SAMPLES = [
    "astronaut", "camera", "cat", "chelsea", "coffee", "coins", "horse", "hubble_deep_field",
    "immunohistochemistry", "moon", "page", "rocket", "retina", "text", "brick", "grass", "gravel",
    "colorwheel", "logo", "microaneurysms", "cell", "clock", "checkerboard", "shepp_logan_phantom",
]  # fmt: skip


def _png(array: np.ndarray) -> bytes:
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = ((array - low) / max(high - low, 1e-9) * 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    image = Image.fromarray(array[..., :3]).resize((512, 512))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _project_photos() -> dict[str, bytes]:
    a = astronaut()
    return {
        "astronaut.jpg": encode(a, "JPEG", quality=90),
        "astronaut-crop.jpg": encode(a.crop((40, 0, 440, 400)).resize((512, 512)), "JPEG"),
        "cat.png": encode(cat(), "PNG"),
        "noise.png": encode(noise_image(512, 512), "PNG"),
        "blurred.png": encode(blurred(a), "PNG"),
        "flat-grey.png": encode(Image.new("RGB", (512, 512), (128, 128, 128)), "PNG"),
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_scikit_image_samples_are_not_explicit(name: str) -> None:
    verdict = ImageScreener(DEFAULT_THRESHOLD).screen(_png(getattr(skdata, name)()))
    assert not verdict.explicit, verdict.score


@pytest.mark.parametrize("name", sorted(_project_photos()))
def test_project_test_photos_are_not_explicit(name: str) -> None:
    verdict = ImageScreener(DEFAULT_THRESHOLD).screen(_project_photos()[name])
    assert not verdict.explicit, verdict.score


def test_threshold_zero_makes_every_image_explicit() -> None:
    for data in _project_photos().values():
        verdict = ImageScreener(0.0).screen(data)
        assert verdict.explicit
        assert 0.0 <= verdict.score <= 1.0


def test_the_model_loads_once_per_process() -> None:
    assert classifier() is classifier()


def test_blurred_copy_is_a_png_of_the_same_size() -> None:
    original = _project_photos()["astronaut.jpg"]
    copy = Image.open(io.BytesIO(blurred_copy(original)))
    assert copy.format == "PNG"
    assert copy.size == Image.open(io.BytesIO(original)).size
