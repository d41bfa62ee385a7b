# SPDX-License-Identifier: Apache-2.0
"""The remote LoRA loader's logic: the server's list, a download cache under ``models/loras``, sha256 checks.

Files are kept under ``<loras folder>/atelier/<server host_port>/<comfy name>`` (the same
``<subject id>/v<n>/<name>.safetensors`` layout the server publishes), with ``index.json`` beside them
recording each file's version, sha256 and trigger word. A file is downloaded once, to a temporary name, and
kept only when its sha256 is the one the server published; a kept file is hashed again once per process (and
whenever its size or modification time changes) before use. A LoRA in the cache loads without asking the
server anything, so it works offline; the list then shows the cached LoRAs only.

ComfyUI asks for the node's options on every ``/object_info`` and every prompt validation, on its event loop:
the server's list is remembered for :data:`LIST_TTL_S` (an answer) or :data:`ERROR_TTL_S` (a failure), so a
slow or absent server costs one short timeout now and then, not one per request.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from .atelier_connection import Connection
from .lora_catalog import format_entry, key_from_entry
from .remote_client import AtelierServer, AtelierServerError, ChecksumMismatch, RemoteLora

LIST_TTL_S = 10.0
ERROR_TTL_S = 30.0
INDEX_FILE = "index.json"
NO_SERVER = (
    "no LoRA Atelier server is set: enter its address and an API key in the Atelier sidebar "
    "(or set ATELIER_URL and ATELIER_API_KEY for ComfyUI)"
)


def server_folder_name(server_url: str) -> str:
    """``host_port`` of a server URL, safe as a folder name (one cache per server)."""
    parts = urlsplit(server_url)
    name = f"{parts.hostname}_{parts.port or (443 if parts.scheme == 'https' else 80)}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def entry_of(lora: RemoteLora) -> str:
    """The remote loader's combo entry for ``lora``: ``<subject>/<name>/v<n>`` and its trigger word."""
    return format_entry(lora.key, lora.trigger_word)


def _safe_relative(comfy_name: str) -> PurePosixPath:
    path = PurePosixPath(comfy_name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.name.endswith(".safetensors"):
        raise AtelierServerError(f"the server named a LoRA file {comfy_name!r}, which is not a safe relative name")
    return path


@dataclass(frozen=True)
class CachedLora:
    """What the index records about one downloaded file."""

    key: str
    file: str
    """Relative to the server's cache folder, ``/`` separators."""
    sha256: str
    size_bytes: int
    trigger_word: str | None
    lora_id: str
    version: int

    @property
    def entry(self) -> str:
        """The combo entry."""
        return format_entry(self.key, self.trigger_word)


@dataclass
class _Listing:
    at: float
    loras: list[RemoteLora]
    error: AtelierServerError | None


class RemoteLoras:
    """The remote loader's view of one ComfyUI: its cache folder and whichever server the settings name now."""

    def __init__(
        self,
        cache_root: Callable[[], Path],
        connection: Callable[[], Connection | None],
        *,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache_root = cache_root
        self._connection = connection
        self._timeout_s = timeout_s
        self._clock = clock
        self._listings: dict[tuple[str, str | None], _Listing] = {}
        self._verified: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    # --- the server's list -------------------------------------------------------------------------------

    def listing(self, *, refresh: bool = False) -> tuple[list[RemoteLora], AtelierServerError | None]:
        """The server's LoRAs (remembered briefly) and the error of the last attempt, if it failed."""
        connection = self._connection()
        if connection is None:
            return [], AtelierServerError(NO_SERVER)
        memo_key = (connection.server_url, connection.api_key)
        listing = self._listings.get(memo_key)
        now = self._clock()
        fresh_for = ERROR_TTL_S if listing is not None and listing.error else LIST_TTL_S
        if refresh or listing is None or now - listing.at > fresh_for:
            try:
                loras = AtelierServer(connection, self._timeout_s).list_loras()
                listing = _Listing(now, loras, None)
            except AtelierServerError as exc:
                listing = _Listing(now, listing.loras if listing is not None else [], exc)  # keep what it said
            self._listings = {memo_key: listing}
        return listing.loras, listing.error

    def entries(self) -> list[str]:
        """The combo entries: the server's LoRAs, plus cached ones it did not list (offline, or deleted there)."""
        loras, _error = self.listing()
        entries = {lora.key: entry_of(lora) for lora in loras}
        for cached in self.cached().values():
            entries.setdefault(cached.key, cached.entry)
        return [entries[key] for key in sorted(entries, key=str.lower)]

    # --- the cache ---------------------------------------------------------------------------------------

    def server_folder(self, connection: Connection) -> Path:
        """Where files from ``connection``'s server are kept."""
        return self._cache_root() / server_folder_name(connection.server_url)

    def cached(self) -> dict[str, CachedLora]:
        """The index of the current server's cache folder (empty when there is none)."""
        connection = self._connection()
        if connection is None:
            return {}
        try:
            raw = json.loads((self.server_folder(connection) / INDEX_FILE).read_text(encoding="utf-8"))
            return {key: CachedLora(**item) for key, item in raw.get("files", {}).items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def _remember(self, folder: Path, record: CachedLora) -> None:
        index = {key: asdict(item) for key, item in self.cached().items()}
        index[record.key] = asdict(record)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".index-")
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump({"files": index}, file, indent=1, sort_keys=True)
        os.replace(temporary, folder / INDEX_FILE)

    def _intact(self, path: Path, sha256: str) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return False
        stamp = (stat.st_size, stat.st_mtime_ns)
        seen = self._verified.get(str(path))
        if seen is None or seen[:2] != stamp:
            digest = hashlib.sha256()
            with path.open("rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
            seen = (*stamp, digest.hexdigest())
            self._verified[str(path)] = seen
        return seen[2] == sha256

    # --- what the node asks ------------------------------------------------------------------------------

    def problem(self, entry: str) -> bool | str:
        """True when ``entry`` can be loaded (cached, or listed by the server), else why not."""
        key = key_from_entry(entry)
        if key in self.cached():
            return True
        loras, error = self.listing()
        if any(lora.key == key for lora in loras):
            return True
        if error is not None:
            return f"{key} is not in the local cache, and {error}"
        loras, error = self.listing(refresh=True)  # published a moment ago?
        if any(lora.key == key for lora in loras):
            return True
        return f"{key} is not among your LoRAs on the LoRA Atelier server" + (f" ({error})" if error else "")

    def file_for(self, entry: str) -> tuple[Path, str]:
        """The local file of ``entry`` (downloaded and checked first when needed) and its trigger word."""
        connection = self._connection()
        if connection is None:
            raise AtelierServerError(NO_SERVER)
        key = key_from_entry(entry)
        folder = self.server_folder(connection)
        with self._lock:
            cached = self.cached().get(key)
            if cached is not None and self._intact(folder / cached.file, cached.sha256):
                return folder / cached.file, cached.trigger_word or ""
            loras, error = self.listing(refresh=True)
            lora = next((item for item in loras if item.key == key), None)
            if lora is None and cached is not None:
                why = str(error) if error else "the server no longer lists it"
                raise ChecksumMismatch(f"{key}: the cached file no longer matches its sha256, and {why}")
            if lora is None and error is not None:
                raise type(error)(f"{key} is not in the local cache, and {error}")
            if lora is None:
                raise AtelierServerError(f"{key} is not among your LoRAs on the LoRA Atelier server")
            relative = _safe_relative(lora.comfy_name)
            path = folder / relative
            AtelierServer(connection, self._timeout_s).download(lora, path)
            self._remember(folder, CachedLora(
                key, str(relative), lora.sha256, lora.size_bytes, lora.trigger_word, lora.lora_id, lora.version
            ))  # fmt: skip
            self._intact(path, lora.sha256)
            return path, lora.trigger_word or ""
