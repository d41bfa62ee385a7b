"""Canonical hashes and the base-model hash cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from orchestrator.training.hashing import FileHashCache, canonical_json, canonical_sha256


def test_canonical_json_ignores_key_order_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == canonical_json({"a": "é", "b": 1}) == '{"a":"é","b":1}'.encode()
    assert canonical_sha256({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()


def test_file_hash_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    model = tmp_path / "m.bin"
    model.write_bytes(b"one")
    cache = FileHashCache(tmp_path / "cache" / "hashes.json")
    assert cache.sha256(model) == hashlib.sha256(b"one").hexdigest()
    stat = model.stat()
    model.write_bytes(b"two")
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # same size and mtime: the cache answers without reading the file (which is why it keys on both)
    assert cache.sha256(model) == hashlib.sha256(b"one").hexdigest()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert FileHashCache(tmp_path / "cache" / "hashes.json").sha256(model) == hashlib.sha256(b"two").hexdigest()
