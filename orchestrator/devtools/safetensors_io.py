"""Streaming, byte-deterministic, atomic safetensors writing and the "already up to date" check.

The container is written here rather than with ``safetensors.numpy.save_file`` for two reasons: that writer
orders ``__metadata__`` keys at random (so two runs give different bytes and checksums), and it needs every
tensor in memory at once (2.1 GB for a full SD1.5 checkpoint). Here the header is canonical JSON and each
tensor is produced and written one at a time. Reading stays with the ``safetensors`` package.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from safetensors import safe_open

log = logging.getLogger(__name__)

PARAMS_KEY = "atelier.devtools.params"

_DTYPE_NAMES = {"float16": "F16", "float32": "F32", "bfloat16": "BF16", "int64": "I64", "int32": "I32"}


@dataclass(frozen=True)
class TensorEntry:
    """A tensor to write: name, shape, dtype, and how to produce its values when its turn comes."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    produce: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        """Size of the tensor's data in the file."""
        return math.prod(self.shape) * self.dtype.itemsize


def encode_params(params: Mapping[str, Any]) -> str:
    """Canonical JSON of the parameters a file was generated from."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def read_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file."""
    with safe_open(str(path), framework="numpy") as handle:
        return dict(handle.metadata() or {})


def is_up_to_date(path: Path, params: Mapping[str, Any]) -> bool:
    """True when ``path`` exists and was generated from exactly ``params``."""
    if not path.is_file():
        return False
    try:
        stored = read_metadata(path).get(PARAMS_KEY)
    except Exception:  # an unreadable or foreign file is simply regenerated
        log.info("%s is not a readable safetensors file; regenerating", path)
        return False
    return stored == encode_params(params)


def encode_header(entries: Sequence[TensorEntry], metadata: Mapping[str, str]) -> bytes:
    """Length prefix and JSON header, padded with spaces so that the data starts 8-byte aligned."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    for entry in entries:
        dtype = _DTYPE_NAMES[entry.dtype.name]
        header[entry.name] = {
            "dtype": dtype,
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-(8 + len(raw)) % 8)
    return struct.pack("<Q", len(raw)) + raw


def _write_data(handle: BinaryIO, entries: Iterable[TensorEntry]) -> None:
    for entry in entries:
        values = np.asarray(entry.produce(), dtype=entry.dtype.newbyteorder("<"), order="C")
        if values.shape != entry.shape:
            raise ValueError(f"{entry.name}: produced shape {values.shape}, declared {entry.shape}")
        handle.write(values.tobytes())


def write_safetensors(path: Path, entries: Sequence[TensorEntry], metadata: Mapping[str, str]) -> None:
    """Write ``entries`` in order to ``path`` as a safetensors file (not atomic; see write_atomically)."""
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tensor names")
    with path.open("wb") as handle:
        handle.write(encode_header(entries, metadata))
        _write_data(handle, entries)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomically(
    path: Path,
    entries: Sequence[TensorEntry],
    params: Mapping[str, Any],
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``entries`` to ``path`` through a temporary file and a rename, unless already up to date.

    A reader never sees a half-written file under ``path``: the data goes to a hidden sibling first, is
    flushed to disk, then replaces ``path`` in one rename.
    """
    path = Path(path)
    if is_up_to_date(path, params):
        log.info("%s is up to date; not regenerating", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {**(extra_metadata or {}), PARAMS_KEY: encode_params(params)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write_safetensors(tmp, entries, metadata)
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path
