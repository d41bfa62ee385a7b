"""A trained LoRA's provenance: our metadata added to its safetensors header, the file written atomically.

(Registering the file as a LoRA version is :mod:`orchestrator.training.publishing`; this is the file only.)
sd-scripts writes its own ``ss_*`` (and ``modelspec.*``) keys into the file's ``__metadata__``. We add
ours beside them, prefixed ``atelier_`` so they never collide, and never change a key that is not
ours. Only the JSON header is rewritten: the tensor bytes are copied as they are, in chunks (a LoRA can be
hundreds of megabytes), and the data offsets in the header stay valid because they count from the start
of the data section. The copy goes to a hidden sibling of the target, is flushed to disk, then renamed
over the target, so a reader (ComfyUI scanning its ``loras`` folder) never sees half a file.

Pure: standard library only, no service imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

METADATA_KEY = "__metadata__"
PREFIX = "atelier_"
MAX_HEADER_BYTES = 100 * 1024 * 1024
CHUNK = 1 << 20


class ProvenanceError(ValueError):
    """The file is not a usable safetensors file, or the metadata cannot be added."""


@dataclass(frozen=True)
class Provenance:
    """Where a LoRA came from. Every value ends up as a string in the safetensors metadata."""

    subject_id: str
    consent_sha256: str
    dataset_manifest_sha256: str
    base_model: str
    base_model_sha256: str
    base_family: str
    trigger_word: str
    service_version: str
    lora_name: str
    lora_version: int
    training_job_id: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, str]:
        """The ``atelier_*`` keys (and ``modelspec.trigger_phrase``) to add to the header."""
        values = {
            "subject_id": self.subject_id,
            "consent_sha256": self.consent_sha256,
            "dataset_manifest_sha256": self.dataset_manifest_sha256,
            "base_model": self.base_model,
            "base_model_sha256": self.base_model_sha256,
            "base_family": self.base_family,
            "trigger_word": self.trigger_word,
            "service_version": self.service_version,
            "lora_name": self.lora_name,
            "lora_version": str(self.lora_version),
            "training_job_id": self.training_job_id,
            "training_parameters": json.dumps(dict(self.parameters), sort_keys=True, separators=(",", ":")),
        }
        return {PREFIX + key: value for key, value in values.items()}


@dataclass(frozen=True)
class WrittenLora:
    """The written file: where, its SHA-256 and size, and the metadata it now carries."""

    path: Path
    sha256: str
    size: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class _Header:
    entries: dict[str, Any]
    metadata: dict[str, str]
    data_start: int
    data_length: int


def read_header(handle: BinaryIO, file_size: int) -> _Header:
    """Parse and check a safetensors header: JSON object, string metadata, data section in the file."""
    prefix = handle.read(8)
    if len(prefix) != 8:
        raise ProvenanceError("file is shorter than a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES or 8 + length > file_size:
        raise ProvenanceError(f"header length {length} does not fit the file ({file_size} bytes)")
    try:
        header = json.loads(handle.read(length))
    except ValueError as exc:
        raise ProvenanceError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProvenanceError("header is not a JSON object")
    metadata = header.pop(METADATA_KEY, {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ProvenanceError("__metadata__ must map strings to strings")
    end = 0
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ProvenanceError(f"tensor {name!r} has no valid data_offsets")
        end = max(end, offsets[1])
    data_length = file_size - 8 - length
    if end != data_length:
        raise ProvenanceError(f"tensors end at byte {end} of the data section, which has {data_length} bytes")
    return _Header(header, dict(metadata), 8 + length, data_length)


def read_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (header only, nothing else read)."""
    with path.open("rb") as handle:
        return read_header(handle, path.stat().st_size).metadata


def encode_header(entries: Mapping[str, Any], metadata: Mapping[str, str]) -> bytes:
    """Length prefix and JSON header, padded with spaces so that the data section starts 8-byte aligned."""
    raw = json.dumps({METADATA_KEY: dict(metadata), **entries}, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % 8)
    return struct.pack("<Q", len(raw)) + raw


def merged_metadata(existing: Mapping[str, str], added: Mapping[str, str]) -> dict[str, str]:
    """``existing`` plus ``added``; only our own (``atelier_``) keys may be replaced."""
    clash = sorted(k for k in added if k in existing and not k.startswith(PREFIX) and existing[k] != added[k])
    if clash:
        raise ProvenanceError(f"refusing to change metadata that is not ours: {clash}")
    return {**existing, **added}


def write_with_provenance(source: Path, target: Path, metadata: Mapping[str, str]) -> WrittenLora:
    """Copy ``source`` to ``target`` with ``metadata`` added to its header; atomic, streamed, hashed.

    ``modelspec.trigger_phrase`` is filled from ``atelier_trigger_word`` when sd-scripts left it unset.
    """
    size = source.stat().st_size
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            header = read_header(src, size)
            added = dict(metadata)
            trigger = added.get(PREFIX + "trigger_word")
            if trigger and not header.metadata.get("modelspec.trigger_phrase"):
                added["modelspec.trigger_phrase"] = trigger
            final = merged_metadata(header.metadata, added)
            encoded = encode_header(header.entries, final)
            dst.write(encoded)
            digest.update(encoded)
            written = len(encoded) + _copy(src, dst, digest)
            dst.flush()
            os.fsync(dst.fileno())
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return WrittenLora(target, digest.hexdigest(), written, final)


def _copy(src: BinaryIO, dst: BinaryIO, digest: Any) -> int:
    copied = 0
    while chunk := src.read(CHUNK):
        dst.write(chunk)
        digest.update(chunk)
        copied += len(chunk)
    return copied
