# SPDX-License-Identifier: Apache-2.0
"""Reading a LoRA's safetensors header metadata without loading any tensor.

A safetensors file starts with an unsigned little-endian 64-bit length N, then N bytes of JSON: an object
with one entry per tensor and an optional ``__metadata__`` object of string values. Only those 8 + N bytes
are read here. LoRA Atelier's publisher adds ``atelier_*`` keys (trigger word, LoRA name, version, subject,
base model); kohya sd-scripts writes its own ``ss_*`` and ``modelspec.*`` keys, used as fallbacks.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

METADATA_KEY = "__metadata__"
MAX_HEADER_BYTES = 100 * 1024 * 1024
"""Headers longer than this are refused (the safetensors format itself caps them at 100 MB)."""


class HeaderError(ValueError):
    """The file is not a readable safetensors file."""


def read_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of the safetensors file at ``path``; empty when it has none.

    Reads only the header. Raises :class:`HeaderError` when the file is too short, the header length does not
    fit the file, or the header is not a JSON object. Metadata values that are not strings are left out (the
    format allows only strings; some writers break that rule).
    """
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise HeaderError(f"{path.name}: shorter than a safetensors header")
        (length,) = struct.unpack("<Q", prefix)
        size = path.stat().st_size
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise HeaderError(f"{path.name}: header length {length} does not fit the file ({size} bytes)")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HeaderError(f"{path.name}: header is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise HeaderError(f"{path.name}: header is not a JSON object")
    metadata = header.get(METADATA_KEY) or {}
    if not isinstance(metadata, dict):
        raise HeaderError(f"{path.name}: {METADATA_KEY} is not a JSON object")
    return {str(key): value for key, value in metadata.items() if isinstance(value, str)}


@dataclass(frozen=True)
class LoraInfo:
    """What a LoRA's metadata says about it; None where it says nothing."""

    trigger_word: str | None = None
    lora_name: str | None = None
    version: int | None = None
    subject_id: str | None = None
    base_model: str | None = None
    base_family: str | None = None
    from_atelier: bool = False
    """Whether LoRA Atelier published the file (it carries ``atelier_*`` keys)."""


def _first(metadata: Mapping[str, str], *keys: str) -> str | None:
    for key in keys:
        value = metadata.get(key, "").strip()
        if value and value != "None":
            return value
    return None


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    digits = text.removeprefix("v")
    return int(digits) if digits.isdigit() else None


def lora_info(metadata: Mapping[str, str]) -> LoraInfo:
    """Pick the facts out of a LoRA's metadata: our ``atelier_*`` keys first, then sd-scripts' keys."""
    return LoraInfo(
        trigger_word=_first(metadata, "atelier_trigger_word", "modelspec.trigger_phrase"),
        lora_name=_first(metadata, "atelier_lora_name", "ss_output_name", "modelspec.title"),
        version=_version(_first(metadata, "atelier_lora_version")),
        subject_id=_first(metadata, "atelier_subject_id"),
        base_model=_first(metadata, "atelier_base_model", "ss_sd_model_name"),
        base_family=_first(metadata, "atelier_base_family", "ss_base_model_version"),
        from_atelier=any(key.startswith("atelier_") for key in metadata),
    )
