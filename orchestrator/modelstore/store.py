# SPDX-License-Identifier: Apache-2.0
"""What was pulled into the models store (``<models_dir>/pulled.json``) and the catalog entries that name it.

A pull record keeps, per model name, every file with its store path, size, sha256 and origin (hub repo and
commit, URL or local file), so a later pull can tell a file is already there without downloading or hashing it
again, and ``remove`` knows which files are the model's. The catalog (``catalog.yaml``, read by the generation
feature) gets the model's entry (family + files); entries written by hand are kept as they are.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class StoredFile:
    """One file of a pulled model."""

    folder: str
    filename: str
    sha256: str
    size: int
    origin: str

    @property
    def relative(self) -> str:
        """Its path in the store."""
        return f"{self.folder}/{self.filename}"


def write_json(path: Path, value: object) -> None:
    """Write JSON atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def sha256_of(path: Path, chunk: int = 8 << 20) -> str:
    """The file's sha256 (hex)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class ModelStore:
    """The models store: pull records and the catalog."""

    def __init__(self, models_dir: Path, catalog_path: Path | None = None) -> None:
        self.root = models_dir
        self.catalog_path = catalog_path or models_dir / "catalog.yaml"
        self.records_path = models_dir / "pulled.json"

    def path(self, folder: str, filename: str) -> Path:
        """Where a file of ``folder`` lives."""
        return self.root / folder / filename

    def records(self) -> dict[str, dict[str, Any]]:
        """Every pull record by model name."""
        try:
            data = json.loads(self.records_path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def recorded_file(self, folder: str, filename: str) -> StoredFile | None:
        """The record of a file that is still in the store with its recorded size."""
        for record in self.records().values():
            for item in record.get("files", []):
                if item.get("folder") == folder and item.get("filename") == filename:
                    stored = StoredFile(**item)
                    path = self.path(folder, filename)
                    if path.is_file() and path.stat().st_size == stored.size:
                        return stored
        return None

    def record(self, name: str, source: str, files: list[StoredFile], entry: dict[str, Any] | None) -> None:
        """Record a pulled model and (when it has one) its catalog entry."""
        records = self.records()
        records[name] = {"source": source, "pulled_at": time.time(), "files": [asdict(f) for f in files]}
        write_json(self.records_path, records)
        if entry is not None:
            catalog = self.catalog()
            catalog[name] = entry
            self._write_catalog(catalog)

    def catalog(self) -> dict[str, Any]:
        """The catalog file's entries (empty when there is none)."""
        try:
            raw = yaml.safe_load(self.catalog_path.read_text()) or {}
        except OSError:
            return {}
        return dict(raw) if isinstance(raw, dict) else {}

    def _write_catalog(self, catalog: dict[str, Any]) -> None:
        self.catalog_path.parent.mkdir(parents=True, exist_ok=True)
        header = "# Named base models (see README: Generate). `atelier models pull` adds and removes entries.\n"
        tmp = self.catalog_path.with_name(self.catalog_path.name + ".tmp")
        tmp.write_text(header + yaml.safe_dump(catalog, sort_keys=True))
        tmp.replace(self.catalog_path)

    def remove(self, name: str) -> list[Path]:
        """Forget model ``name``: its catalog entry and the files no other pulled model uses. Returns them."""
        records = self.records()
        record = records.pop(name, None)
        catalog = self.catalog()
        if record is None and name not in catalog:
            raise KeyError(name)
        still_used = {(f["folder"], f["filename"]) for r in records.values() for f in r.get("files", [])}
        removed = []
        for item in (record or {}).get("files", []):
            if (item["folder"], item["filename"]) in still_used:
                continue
            path = self.path(item["folder"], item["filename"])
            if path.exists():
                path.unlink()
                removed.append(path)
        write_json(self.records_path, records)
        if catalog.pop(name, None) is not None:
            self._write_catalog(catalog)
        return removed

    def listing(self) -> list[dict[str, Any]]:
        """Every catalog entry and pulled model, with whether its files are present."""
        records, catalog = self.records(), self.catalog()
        rows = []
        for name in sorted(set(records) | set(catalog)):
            record = records.get(name, {})
            files = record.get("files", [])
            present = all(self.path(f["folder"], f["filename"]).is_file() for f in files)
            rows.append(
                {
                    "name": name,
                    "family": (catalog.get(name) or {}).get("family"),
                    "source": record.get("source", "catalog.yaml"),
                    "files": [f"{f['folder']}/{f['filename']}" for f in files],
                    "size": sum(int(f["size"]) for f in files),
                    "complete": present,
                }
            )
        return rows
