"""Image factories for the trainer tests (Pillow/numpy; faces from scikit-image's sample data)."""

from __future__ import annotations

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageFilter
from skimage import data as skdata


@functools.cache
def astronaut() -> Image.Image:
    """scikit-image's 512x512 astronaut portrait (a frontal face around x 180-270, y 65-160)."""
    return Image.fromarray(skdata.astronaut())


@functools.cache
def cat() -> Image.Image:
    """scikit-image's chelsea cat (451x300): no human face."""
    return Image.fromarray(skdata.chelsea())


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """Encode an image to bytes."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A sharp random RGB image (high Laplacian variance, no face)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def blurred(image: Image.Image, radius: float = 6.0) -> Image.Image:
    """Gaussian-blurred copy."""
    return image.filter(ImageFilter.GaussianBlur(radius))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels, with one tiny IDAT and IEND."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
