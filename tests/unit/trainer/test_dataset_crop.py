"""Crop planning: face squares stay inside the image, buckets keep aspect ratios."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trainer.dataset.crop import CropMode, bucket_size, centre_square, crop_and_resize, face_square, plan_crop
from trainer.dataset.faces import Box


@st.composite
def image_and_face(draw: st.DrawFn) -> tuple[int, int, Box]:
    width = draw(st.integers(64, 4000))
    height = draw(st.integers(64, 4000))
    fw = draw(st.integers(8, max(8, width // 2)))
    fh = draw(st.integers(8, max(8, height // 2)))
    left = draw(st.integers(0, width - fw))
    top = draw(st.integers(0, height - fh))
    return width, height, Box(left, top, left + fw, top + fh)


@given(case=image_and_face(), margin=st.floats(0, 2), resolution=st.sampled_from([512, 768, 1024]))
def test_face_square_is_a_square_inside_the_image(case: tuple[int, int, Box], margin: float, resolution: int) -> None:
    width, height, face = case
    box = face_square(face, width, height, margin=margin, resolution=resolution)
    assert box.width == box.height > 0
    assert box.left >= 0
    assert box.right <= width
    assert box.top >= 0
    assert box.bottom <= height
    centre_x, centre_y = (face.left + face.right) / 2, (face.top + face.bottom) / 2
    assert box.left <= centre_x <= box.right
    assert box.top <= centre_y <= box.bottom


def test_face_square_has_the_margin_when_there_is_room() -> None:
    box = face_square(Box(900, 400, 1100, 600), 2000, 2000, margin=1.0, resolution=512)
    assert box == Box(700, 200, 1300, 800)


def test_small_face_is_not_cropped_below_the_training_resolution() -> None:
    box = face_square(Box(1000, 1000, 1040, 1040), 3000, 2000, margin=0.5, resolution=1024)
    assert box.width == 1024


def test_centre_square() -> None:
    assert centre_square(1000, 600) == Box(200, 0, 800, 600)


@given(width=st.integers(100, 5000), height=st.integers(100, 5000), resolution=st.sampled_from([512, 1024]))
def test_buckets_are_multiples_of_64_within_the_area(width: int, height: int, resolution: int) -> None:
    out_w, out_h = bucket_size(width, height, resolution)
    assert out_w % 64 == 0
    assert out_h % 64 == 0
    assert out_w * out_h <= resolution * resolution


@pytest.mark.parametrize(("size", "expected"), [((1600, 1200), (1152, 896)), ((1000, 1000), (1024, 1024))])
def test_bucket_picks_the_nearest_aspect(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert bucket_size(*size, 1024) == expected


def test_plan_and_resize() -> None:
    pixels = np.zeros((600, 900, 3), np.uint8)
    box, out = plan_crop(900, 600, mode=CropMode.BUCKET, resolution=512, face=None, margin=0.5)
    resized = crop_and_resize(pixels, box, out)
    assert resized.shape == (out[1], out[0], 3)
    box, out = plan_crop(900, 600, mode=CropMode.FACE, resolution=512, face=None, margin=0.5)
    assert box == centre_square(900, 600)
    assert out == (512, 512)
