# SPDX-License-Identifier: Apache-2.0
"""The stand-in's input/output/temp folders: uploads, ``/view`` and saved images (real PNG files)."""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zlib
from pathlib import Path


def _png(width: int, height: int, pixels: bytes, level: int) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` (rows of ``width`` RGB triples, each after its filter byte)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    image = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels, level)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + image


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid RGB PNG of one colour (tiny once compressed)."""
    return _png(width, height, (b"\x00" + bytes(rgb) * width) * height, 6)


#: Keeps the low 4 bits of a byte: noise of 16 levels per channel.
_FOUR_BITS = bytes(range(16)) * 16


def textured_png_bytes(width: int, height: int, seed: bytes) -> bytes:
    """A valid RGB PNG of noise (16 levels per channel, from ``seed``), about as large as a generated image:
    ~1.75 bytes per pixel, 0.46 MB at 512 x 512 and 1.8 MB at 1024 x 1024. (The real ComfyUI's 64 x 64
    outputs of our random-weight model measure 11.6 KB, 2.8 bytes per pixel with its metadata; a picture
    compresses better than that noise.)"""
    row_bytes = 3 * width
    noise = hashlib.shake_256(seed).digest(row_bytes * height).translate(_FOUR_BITS)
    rows = b"".join(b"\x00" + noise[y * row_bytes : (y + 1) * row_bytes] for y in range(height))
    return _png(width, height, rows, 1)


class FileStore:
    """ComfyUI's three folders under one root."""

    def __init__(
        self, root: Path, *, input_dir: Path | None = None, output_dir: Path | None = None, temp_dir: Path | None = None
    ) -> None:
        self.dirs = {
            "input": (input_dir or root / "input").resolve(),
            "output": (output_dir or root / "output").resolve(),
            "temp": (temp_dir or root / "temp").resolve(),
        }
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)

    def _resolve(self, kind: str, subfolder: str, filename: str) -> Path | None:
        base = self.dirs.get(kind)
        if base is None or not filename or filename.startswith("/") or ".." in filename:
            return None
        path = (base / subfolder / filename).resolve()
        return path if os.path.commonpath((base, path)) == str(base) else None

    def read(self, kind: str, subfolder: str, filename: str) -> bytes | None:
        """Bytes for ``/view``; None when refused or missing."""
        path = self._resolve(kind, subfolder, filename)
        return path.read_bytes() if path is not None and path.is_file() else None

    def upload(
        self, data: bytes, filename: str, *, kind: str = "input", subfolder: str = "", overwrite: bool = False
    ) -> str | None:
        """Store an upload; ComfyUI's naming: same bytes reuse the name, else ``name (1).ext``."""
        path = self._resolve(kind, subfolder, filename)
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        stem, ext = os.path.splitext(filename)
        counter = 1
        while not overwrite and path.exists():
            if hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest():
                return path.name
            path = path.with_name(f"{stem} ({counter}){ext}")
            counter += 1
        path.write_bytes(data)
        return path.name

    def input_path(self, name: str) -> Path | None:
        """Where the input file ``LoadImage`` names ``name`` (``subfolder/file`` allowed) lives."""
        subfolder, _, filename = name.rpartition("/")
        return self._resolve("input", subfolder, filename)

    def input_exists(self, name: str) -> bool:
        """Whether ``LoadImage`` finds ``name``."""
        path = self.input_path(name)
        return path is not None and path.is_file()

    def input_is_image(self, name: str) -> bool:
        """Whether the input file starts like a PNG, JPEG or WebP (what PIL would open)."""
        path = self.input_path(name)
        if path is None or not path.is_file():
            return False
        head = path.read_bytes()[:12]
        return head.startswith((b"\x89PNG", b"\xff\xd8\xff")) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")

    def input_files(self) -> list[str]:
        """Everything in the input folder, as ``LoadImage`` lists it."""
        base = self.dirs["input"]
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    def save_image(self, kind: str, prefix: str, png: bytes) -> tuple[str, str]:
        """Save like SaveImage: ``<prefix>_<counter:05>_.png``; returns (filename, subfolder)."""
        subfolder, _, stem = prefix.rpartition("/")
        folder = self.dirs[kind] / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(re.escape(stem) + r"_(\d{5})_\.png$")
        used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
        filename = f"{stem}_{max(used, default=0) + 1:05}_.png"
        (folder / filename).write_bytes(png)
        return filename, subfolder
