# SPDX-License-Identifier: Apache-2.0
"""The Atelier LoRAs in a ``loras`` folder, and the combo entries the LoRA loader node offers.

LoRA Atelier publishes a trained LoRA as ``loras/<subject>/<version>/<name>.safetensors`` (version ``v1``,
``v2``...); ComfyUI knows it by that relative path. A file counts as an Atelier LoRA when it sits in that
layout or when its header carries our ``atelier_*`` metadata (a file someone downloaded and dropped
anywhere in their ``loras`` folder).

A combo entry is the relative path without ``.safetensors`` and with ``/`` separators (the *key*), followed
by the trigger word where the metadata has one: ``"3f2c…/v2/alice (trigger: ohwx alice)"``. The entry is
what a graph stores; the loader maps it back to the file with :func:`resolve`.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .lora_metadata import HeaderError, LoraInfo, lora_info, read_metadata

SUFFIX = ".safetensors"
TRIGGER_OPEN = " (trigger: "
TRIGGER_CLOSE = ")"
_VERSION_PART = re.compile(r"^v?\d+$")


@dataclass(frozen=True)
class AtelierLora:
    """One Atelier LoRA file as ComfyUI's ``loras`` folder list names it."""

    relative_name: str
    """The name in ComfyUI's ``loras`` list (what ``LoraLoader`` takes), with the platform's separators."""
    key: str
    """``relative_name`` without ``.safetensors``, with ``/`` separators: ``<subject>/<version>/<name>``."""
    info: LoraInfo

    @property
    def entry(self) -> str:
        """The combo entry: the key, plus the trigger word where there is one."""
        return format_entry(self.key, self.info.trigger_word)


def format_entry(key: str, trigger_word: str | None) -> str:
    """``key`` with ``" (trigger: <word>)"`` appended when there is a trigger word."""
    if not trigger_word:
        return key
    return f"{key}{TRIGGER_OPEN}{' '.join(trigger_word.split())}{TRIGGER_CLOSE}"


def key_of(relative_name: str) -> str:
    """The key of a ``loras`` list name: ``/`` separators, ``.safetensors`` dropped."""
    key = relative_name.replace("\\", "/")
    return key[: -len(SUFFIX)] if key.lower().endswith(SUFFIX) else key


def in_layout(relative_name: str) -> bool:
    """Whether ``relative_name`` is ``<subject>/<version>/<name>.safetensors`` with a version like ``v3``."""
    parts = relative_name.replace("\\", "/").split("/")
    return (
        len(parts) == 3
        and relative_name.lower().endswith(SUFFIX)
        and all(parts)
        and _VERSION_PART.match(parts[1]) is not None
    )


class HeaderCache:
    """Metadata per file, read again only when the file's size or modification time changes.

    ComfyUI asks for a node's inputs on every ``/object_info`` and every prompt validation; the cache keeps
    that to one ``stat`` per LoRA file.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, int, dict[str, str] | None]] = {}

    def metadata(self, path: Path) -> dict[str, str] | None:
        """The file's ``__metadata__``, or None when it cannot be read as safetensors."""
        try:
            stat = path.stat()
        except OSError:
            self._entries.pop(str(path), None)
            return None
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._entries.get(str(path))
        if cached is not None and cached[:2] == stamp:
            return cached[2]
        try:
            metadata: dict[str, str] | None = read_metadata(path)
        except (OSError, HeaderError):
            metadata = None
        self._entries[str(path)] = (*stamp, metadata)
        return metadata

    def __len__(self) -> int:
        return len(self._entries)


def _version_number(key: str) -> int:
    version = key.split("/")[1].removeprefix("v") if key.count("/") == 2 else ""
    return int(version) if version.isdigit() else -1


def _sort_key(lora: AtelierLora) -> tuple[str, int, str]:
    parts = lora.key.split("/")
    return (parts[0].lower(), _version_number(lora.key), lora.key.lower())


def catalog(
    names: Iterable[str], locate: Callable[[str], Path | None], cache: HeaderCache | None = None
) -> list[AtelierLora]:
    """The Atelier LoRAs among ``names`` (a ``loras`` folder list), sorted by subject, version, name.

    ``locate`` turns a list name into the file's path (None when it has gone). Files in the layout are
    always listed; other ``.safetensors`` files only when their metadata comes from LoRA Atelier. Files whose
    header cannot be read are left out.
    """
    cache = HeaderCache() if cache is None else cache
    found: dict[str, AtelierLora] = {}
    for name in names:
        if not name.lower().endswith(SUFFIX):
            continue
        path = locate(name)
        metadata = cache.metadata(path) if path is not None else None
        if metadata is None:
            continue
        info = lora_info(metadata)
        if in_layout(name) or info.from_atelier:
            lora = AtelierLora(name, key_of(name), info)
            found.setdefault(lora.key, lora)
    return sorted(found.values(), key=_sort_key)


def scan_folder(root: Path, cache: HeaderCache | None = None) -> list[AtelierLora]:
    """:func:`catalog` for every file under ``root`` (a ``loras`` folder), following symlinks."""
    names: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=True):
        for filename in filenames:
            names.append(os.path.relpath(os.path.join(dirpath, filename), root))
    return catalog(names, lambda name: root / name, cache)


def entries(loras: Sequence[AtelierLora]) -> list[str]:
    """The combo entries of ``loras``, in order."""
    return [lora.entry for lora in loras]


def resolve(value: str, loras: Sequence[AtelierLora]) -> AtelierLora | None:
    """The LoRA a graph's value names: a combo entry, a key, or a ``loras`` list name; None if unknown."""
    for lora in loras:
        if value in (lora.entry, lora.key, lora.relative_name):
            return lora
    return None


def key_from_entry(entry: str) -> str:
    """The key part of a combo entry (the entry itself when it names no trigger word)."""
    head, separator, _ = entry.partition(TRIGGER_OPEN)
    return head if separator and entry.endswith(TRIGGER_CLOSE) else entry
