"""Read an image's format and dimensions from its header, without decoding any pixel.

This is the decompression-bomb guard: a 50,000 x 50,000 PNG is a few kilobytes on disk, and the checks
must reject it by looking at the header only. Pillow's own guard (``Image.MAX_IMAGE_PIXELS``) warns or raises
at different thresholds than ours, so we read the three formats we accept ourselves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum


class ImageFormat(StrEnum):
    """The upload formats the service accepts."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"


@dataclass(frozen=True)
class ImageHeader:
    """What the header says; ``width``/``height`` are 0 when the header is cut short."""

    format: ImageFormat
    width: int
    height: int

    @property
    def complete(self) -> bool:
        """Whether the header held the dimensions."""
        return self.width > 0 and self.height > 0

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})


def sniff_format(data: bytes) -> ImageFormat | None:
    """Return the format named by the file's magic bytes, or None for anything we do not accept."""
    if data.startswith(_PNG_MAGIC):
        return ImageFormat.PNG
    if data.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return ImageFormat.WEBP
    return None


def probe_image(data: bytes) -> ImageHeader | None:
    """Return the header facts of a JPEG, PNG or WebP file; None when it is none of these."""
    fmt = sniff_format(data)
    if fmt is None:
        return None
    if fmt is ImageFormat.PNG:
        width, height = _png_size(data)
    elif fmt is ImageFormat.JPEG:
        width, height = _jpeg_size(data)
    else:
        width, height = _webp_size(data)
    return ImageHeader(fmt, width, height)


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return 0, 0
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 0, 0
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                return 0, 0
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a valid JPEG
            return 0, 0
        pos += 2 + length
    return 0, 0


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    return 0, 0
