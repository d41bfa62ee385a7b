"""Tiny safetensors files written by hand (8-byte little-endian length, JSON header, tensor bytes)."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def header_bytes(header: Any) -> bytes:
    """Length prefix + JSON ``header`` (any JSON value, to make broken files too)."""
    raw = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def write_safetensors(path: Path, metadata: Mapping[str, Any] | None = None, *, data: bytes = b"\0" * 8) -> Path:
    """A file with one float32 tensor ``w`` of shape [2] over ``data`` and ``metadata`` as ``__metadata__``."""
    header: dict[str, Any] = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header_bytes(header) + data)
    return path


def atelier_metadata(trigger: str | None = "ohwx person", name: str = "alice", version: int = 1) -> dict[str, str]:
    """The keys LoRA Atelier's publisher writes that the nodes read (a subset of them)."""
    metadata = {
        "atelier_lora_name": name,
        "atelier_lora_version": str(version),
        "atelier_subject_id": "subj-1",
        "atelier_base_model": "sd15-base",
        "atelier_base_family": "sd15",
        "ss_output_name": "run-output",
    }
    if trigger is not None:
        metadata["atelier_trigger_word"] = trigger
    return metadata
