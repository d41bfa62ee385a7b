"""Header probing: format and dimensions without decoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.unit.trainer.images import encode, png_header_only
from trainer.dataset.probe import ImageFormat, probe_image, sniff_format

FORMATS = [
    ("JPEG", {}, ImageFormat.JPEG),
    ("PNG", {}, ImageFormat.PNG),
    ("WEBP", {"lossless": False}, ImageFormat.WEBP),  # VP8
    ("WEBP", {"lossless": True}, ImageFormat.WEBP),  # VP8L
    ("WEBP", {"exif": b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"}, ImageFormat.WEBP),  # VP8X
]


@settings(max_examples=25, deadline=None)
@given(
    width=st.integers(1, 700),
    height=st.integers(1, 700),
    case=st.sampled_from(FORMATS),
)
def test_probe_matches_pillow(width: int, height: int, case: tuple[str, dict[str, object], ImageFormat]) -> None:
    fmt, params, expected = case
    data = encode(Image.new("RGB", (width, height), (10, 200, 30)), fmt, **params)
    header = probe_image(data)
    assert header is not None
    assert (header.format, header.width, header.height) == (expected, width, height)


def test_progressive_jpeg_with_exif_is_probed() -> None:
    image = Image.new("RGB", (321, 123), "blue")
    exif = Image.Exif()
    exif[0x010F] = "camera maker"
    header = probe_image(encode(image, "JPEG", progressive=True, exif=exif.tobytes()))
    assert header is not None
    assert (header.width, header.height) == (321, 123)


def test_bomb_header_is_read_without_decoding() -> None:
    header = probe_image(png_header_only(50_000, 50_000))
    assert header is not None
    assert header.pixels == 2_500_000_000


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"GIF89a" + b"\x00" * 20, b"%PDF-1.7\n", b"RIFF\x00\x00\x00\x00WAVEfmt "],
)
def test_non_images_are_not_probed(data: bytes) -> None:
    assert sniff_format(data) is None
    assert probe_image(data) is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_cut_header_is_incomplete(fmt: str) -> None:
    data = encode(Image.new("RGB", (40, 30)), fmt)
    header = probe_image(data[:14])
    assert header is not None
    assert not header.complete
