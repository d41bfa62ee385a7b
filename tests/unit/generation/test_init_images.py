# SPDX-License-Identifier: Apache-2.0
"""Init images from JSON bodies: decoding, limits, and proof that the bytes are an image."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from orchestrator.generation.init_images import InitImageError, parse_init_image

LIMITS = {"max_bytes": 100_000, "max_pixels": 512 * 512}


def _encoded(kind: str, size: tuple[int, int] = (20, 10), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, kind)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "mime", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
def test_data_urls_of_the_accepted_formats(kind: str, mime: str, extension: str) -> None:
    data = _encoded(kind)
    image = parse_init_image(f"data:{mime};base64,{base64.b64encode(data).decode()}", **LIMITS)
    assert (image.content_type, image.extension, image.width, image.height) == (mime, extension, 20, 10)
    assert image.data == data


def test_bare_base64_with_line_breaks_and_a_lying_mime_type() -> None:
    data = _encoded("PNG")
    text = base64.encodebytes(data).decode()  # wrapped at 76 characters
    assert parse_init_image(text, **LIMITS).content_type == "image/png"
    assert parse_init_image("data:image/jpeg;base64," + text, **LIMITS).content_type == "image/png"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("data:image/png,rawbytes", "must be base64"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("", "empty"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a not really").decode(), "not a readable image"),
        ("data:image/gif;base64," + base64.b64encode(_encoded("GIF")).decode(), "GIF images are not accepted"),
        (base64.b64encode(_encoded("PNG", (64, 64))[:45]).decode(), "not a readable image"),
    ],
)
def test_refusals(text: str, reason: str) -> None:
    with pytest.raises(InitImageError, match=reason):
        parse_init_image(text, **LIMITS)


def test_size_limits_before_and_after_decoding() -> None:
    too_long = base64.b64encode(b"\x00" * 200_000).decode()
    with pytest.raises(InitImageError, match="larger than 100000 bytes"):
        parse_init_image(too_long, **LIMITS)
    with pytest.raises(InitImageError, match="at most 262144 are accepted"):
        parse_init_image(base64.b64encode(_encoded("PNG", (1024, 1024), "L")).decode(), **LIMITS)


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = base64.b64encode(_encoded("PNG", (20_000, 20_000), "1")).decode()
    with pytest.raises(InitImageError):
        parse_init_image(bomb, max_bytes=10_000_000, max_pixels=10**12)
