"""Synthetic photos for trying training out: sharp, distinct pictures of random shapes (no people in them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def synthetic_photo(seed: int, size: int = 512) -> Image.Image:
    """Coloured rectangles and ellipses over a fine noise texture: plenty of edges (not blurry), unlike its
    neighbours for another seed (no duplicates)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    base = np.full((size, size, 3), rng.integers(40, 216, size=3), dtype=np.uint8)
    image = Image.fromarray(((base.astype(np.uint16) * 3 + noise) // 4).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = (int(v) for v in rng.integers(0, size - 64, size=2))
        x1, y1 = x0 + int(rng.integers(32, size // 2)), y0 + int(rng.integers(32, size // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=colour, outline=(0, 0, 0), width=3)
    return image


def write_photos(folder: Path, count: int, *, size: int = 512, seed: int = 0) -> list[Path]:
    """``count`` PNG photos ``1.png`` … in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(1, count + 1):
        path = folder / f"{index}.png"
        synthetic_photo(seed * 1000 + index, size).save(path)
        paths.append(path)
    return paths
