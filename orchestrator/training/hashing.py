"""Content hashes: canonical JSON records (consent, dataset manifest) and large model files (cached)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from orchestrator.storage.base import file_digest

log = logging.getLogger(__name__)


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value that its hash is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def canonical_sha256(value: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


class FileHashCache:
    """SHA-256 of large files (base checkpoints), remembered by path, size and mtime in a JSON file.

    Hashing a 2 GB checkpoint takes seconds; every LoRA's provenance names its base model's hash, so the
    answer is kept in ``cache_file`` and recomputed only when the file changes. Blocking: call
    :meth:`sha256` in a thread.
    """

    def __init__(self, cache_file: Path) -> None:
        self._cache_file = cache_file
        self._lock = threading.Lock()

    def _load(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self._cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _save(self, entries: dict[str, Any]) -> None:
        self._cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._cache_file.with_name(f".{self._cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self._cache_file)

    def sha256(self, path: Path) -> str:
        """The file's SHA-256, from the cache when its size and mtime are unchanged."""
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        key = str(path)
        with self._lock:
            cached = self._load().get(key)
        if isinstance(cached, dict) and cached.get("stamp") == stamp:
            return str(cached["sha256"])
        digest, _ = file_digest(path)
        log.info("hashed %s (%d bytes)", path, stat.st_size)
        with self._lock:
            entries = self._load()
            entries[key] = {"stamp": stamp, "sha256": digest}
            self._save(entries)
        return digest
