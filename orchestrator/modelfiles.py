"""Model files in the store: what a safetensors checkpoint's header says about its family.

Only the header is read (an 8-byte length, then JSON), never the tensors, so checking a 6 GB
checkpoint costs a few kilobytes of I/O.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Literal

Family = Literal["sd15", "sdxl", "flux"]

MAX_HEADER_BYTES = 100 << 20


def tensor_names(path: Path) -> list[str]:
    """The tensor names in a safetensors file's header; empty when it is missing or not safetensors."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) != 8:
                return []
            (length,) = struct.unpack("<Q", raw)
            if length > MAX_HEADER_BYTES:
                return []
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return []
    return [key for key in header if key != "__metadata__"] if isinstance(header, dict) else []


def family_of(names: Collection[str]) -> Family | None:
    """SD1.5, SDXL or Flux.1 from a checkpoint's tensor names; None when they do not tell.

    A single-file SD1.5 checkpoint has the original CLIP-L text encoder (``cond_stage_model.transformer``)
    beside its U-Net; an SD2 one (OpenCLIP, ``cond_stage_model.model``) is none of ours.
    """
    if any("double_blocks." in name for name in names):
        return "flux"
    has_unet = any(name.startswith("model.diffusion_model.input_blocks.") for name in names)
    if has_unet and any(name.startswith("conditioner.embedders.1.") for name in names):
        return "sdxl"
    if has_unet and any(name.startswith("cond_stage_model.transformer.") for name in names):
        return "sd15"
    return None
