# SPDX-License-Identifier: Apache-2.0
"""img2img init images: sent in the JSON body as a base64 data URL, checked to be a real image, kept in storage.

Accepted: ``data:image/png;base64,...`` (PNG, JPEG or WebP; the declared type need not match, the bytes
decide) or bare base64. Limits: ``ATELIER_INIT_IMAGE_MAX_BYTES`` decoded bytes and
``ATELIER_INIT_IMAGE_MAX_PIXELS`` pixels (checked from the header before decoding the pixels).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

FORMATS = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg"), "WEBP": ("image/webp", "webp")}
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+\-]+/[\w.+\-]+)?(?P<params>(;[\w\-]+=[\w\-.]+)*);base64,", re.ASCII)


class InitImageError(ValueError):
    """The init image is not acceptable (the message is for the client)."""


@dataclass(frozen=True)
class InitImage:
    """A checked init image."""

    data: bytes
    content_type: str
    extension: str
    width: int
    height: int

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes."""
        return hashlib.sha256(self.data).hexdigest()


def decode_base64(text: str, max_bytes: int) -> bytes:
    """The bytes of a data URL or bare base64 string, at most ``max_bytes`` of them."""
    match = _DATA_URL.match(text)
    payload = text[match.end() :] if match else text
    if not match and text.startswith("data:"):
        raise InitImageError("a data URL must be base64-encoded: data:image/png;base64,...")
    payload = "".join(payload.split())
    if (len(payload) // 4) * 3 > max_bytes + 3:
        raise InitImageError(f"the image is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InitImageError(f"not valid base64: {exc}") from exc
    if len(data) > max_bytes:
        raise InitImageError(f"the image is larger than {max_bytes} bytes")
    if not data:
        raise InitImageError("the image is empty")
    return data


def check_image(data: bytes, max_pixels: int) -> InitImage:
    """Open the header, check format and pixel count, then decode fully to prove the file is intact."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            kind = image.format or ""
            width, height = image.size
            if kind not in FORMATS:
                raise InitImageError(f"{kind or 'this'} images are not accepted; send PNG, JPEG or WebP")
            if width * height > max_pixels:
                raise InitImageError(f"the image has {width}x{height} pixels; at most {max_pixels} are accepted")
            image.load()
    except InitImageError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise InitImageError(f"not a readable image: {exc}") from exc
    content_type, extension = FORMATS[kind]
    return InitImage(data, content_type, extension, width, height)


def parse_init_image(text: str, *, max_bytes: int, max_pixels: int) -> InitImage:
    """Decode and check an init image from a request body."""
    return check_image(decode_base64(text, max_bytes), max_pixels)
