"""Atomic safetensors writing and the "already up to date" check, shared by the model makers."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

log = logging.getLogger(__name__)

PARAMS_KEY = "atelier.devtools.params"


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


def write_atomically(
    path: Path,
    make_tensors: Callable[[], dict[str, np.ndarray]],
    params: Mapping[str, Any],
    extra_metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``make_tensors()`` to ``path`` through a temporary file and a rename, unless up to date.

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
        save_file(make_tensors(), str(tmp), metadata=metadata)
        tmp.chmod(0o644)  # the writer creates it owner-only; engines may run as another user
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path
