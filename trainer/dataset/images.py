"""Decoding, orientation, metadata stripping and the cheap measurements the checks need."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import cv2
import imagehash
import numpy as np
from PIL import Image, ImageCms, ImageOps

from trainer.dataset.probe import ImageFormat

_ORIENTATION_TAG = 0x0112


class DecodeError(Exception):
    """The header was fine but the pixel data could not be decoded (cut short or corrupt)."""


@dataclass(frozen=True)
class EncodedImage:
    """An image as stored: re-encoded bytes without metadata, and their identity."""

    data: bytes
    format: ImageFormat
    width: int
    height: int
    sha256: str


def decode_upright_rgb(data: bytes) -> Image.Image:
    """Decode fully, apply the EXIF orientation, convert to sRGB ``RGB`` (alpha composited over white).

    The result carries no metadata (``info`` is empty), so saving it writes none. Raises
    :class:`DecodeError` when the pixel data is cut short or corrupt.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            upright = ImageOps.exif_transpose(opened, in_place=False) if _rotated(opened) else opened
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(str(exc) or type(exc).__name__) from exc
    icc = upright.info.get("icc_profile")
    rgb = _to_rgb(upright)
    if icc:
        rgb = _to_srgb(rgb, icc)
    rgb.info = {}
    return rgb


def _rotated(image: Image.Image) -> bool:
    return image.getexif().get(_ORIENTATION_TAG, 1) not in (1, None)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit grey: scale to 8 bits
        array = np.asarray(image, dtype=np.float64)
        scaled = np.clip(array / max(float(array.max()), 1.0) * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    return image.convert("RGB")


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Convert from an embedded colour profile to sRGB; keep the pixels as they are if that fails."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image
    return converted if converted is not None else image


def encode_clean(image: Image.Image, source_format: ImageFormat, *, jpeg_quality: int = 95) -> EncodedImage:
    """Re-encode without any metadata: JPEG uploads stay JPEG, everything else becomes PNG."""
    buffer = io.BytesIO()
    if source_format is ImageFormat.JPEG:
        image.save(buffer, "JPEG", quality=jpeg_quality, optimize=False)
        fmt = ImageFormat.JPEG
    else:
        image.save(buffer, "PNG", compress_level=3)
        fmt = ImageFormat.PNG
    data = buffer.getvalue()
    return EncodedImage(data, fmt, image.width, image.height, hashlib.sha256(data).hexdigest())


def rgb_array(image: Image.Image) -> np.ndarray:
    """The pixels of an ``RGB`` image as a ``(height, width, 3)`` uint8 array."""
    return np.asarray(image)


@dataclass(frozen=True)
class Analysis:
    """A small grey copy of the image for measurements, and how it relates to the full image."""

    grey: np.ndarray
    scale: float  # full-size pixels per analysis pixel

    def blur_score(self) -> float:
        """Variance of the Laplacian; low values mean few edges, i.e. a blurry or flat image."""
        return float(cv2.Laplacian(self.grey, cv2.CV_64F).var())

    def phash(self) -> imagehash.ImageHash:
        """64-bit DCT perceptual hash."""
        return imagehash.phash(Image.fromarray(self.grey, "L"))

    def downscaled(self, side: int) -> Analysis:
        """A smaller copy (longer side ``side``); itself when already that small."""
        height, width = self.grey.shape[:2]
        factor = max(width, height) / side
        if factor <= 1.0:
            return self
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        grey = cv2.resize(self.grey, size, interpolation=cv2.INTER_AREA)
        return Analysis(grey=grey, scale=self.scale * width / size[0])


def analyse(pixels: np.ndarray, side: int) -> Analysis:
    """Grey copy of an RGB array, scaled down (never up) so that its longer side is at most ``side``."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    return Analysis(grey=grey, scale=1.0).downscaled(side)
