"""Node definitions known without asking a backend: the core nodes the templates use, and the Atelier pack's.

``known_nodes.json`` holds them as ComfyUI v0.33.0 (with the Atelier node pack installed) lists them in
``/object_info``, with the options of file-list dropdowns emptied (those depend on the install). They let the
service build the editor (UI) format of a template with no backend at all, and fill in the Atelier nodes when a
backend lacks the pack. The unit tests hold the core part to the recorded ``/object_info`` fixture; the
engines test holds the whole file to a live ComfyUI with the pack (``ATELIER_TEST_REFRESH_RECORDINGS=1``
rewrites it from there with :func:`known_definitions`).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from comfy_workflows.object_info import ObjectInfo, as_object_info, parse_input

KNOWN_NODES_FILE = Path(__file__).with_name("known_nodes.json")
COMFYUI_VERSION = "0.33.0"

CORE_CLASSES = (
    "CheckpointLoaderSimple",
    "VAELoader",
    "UNETLoader",
    "DualCLIPLoader",
    "LoraLoader",
    "LoraLoaderModelOnly",
    "CLIPTextEncode",
    "FluxGuidance",
    "EmptyLatentImage",
    "EmptySD3LatentImage",
    "KSampler",
    "VAEDecode",
    "VAEEncode",
    "ImageScale",
    "RepeatLatentBatch",
    "LoadImage",
    "SaveImage",
    "PreviewImage",
)
"""The core classes the built-in templates (and their marked editor graphs) use."""


def _is_file(option: object) -> bool:
    return isinstance(option, str) and "." in option


def _empty_file_lists(entry: dict[str, Any], everything: bool = False) -> dict[str, Any]:
    """``entry`` with every combo's file names left out (built-in options such as ``pixel_space`` kept), or
    with every combo emptied (``everything``: the pack's lists all depend on the install)."""
    entry = copy.deepcopy(entry)
    for section in ("required", "optional"):
        for name, spec in (entry.get("input", {}).get(section) or {}).items():
            item = parse_input(name, spec, True)
            if item.options is None or not (everything or item.is_upload_list or any(map(_is_file, item.options))):
                continue
            kept = [] if everything else [option for option in item.options if not _is_file(option)]
            if isinstance(spec[0], list):
                spec[0] = kept
            else:
                spec[1]["options"] = kept
    return entry


def known_definitions(object_info: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a live ``/object_info`` this module keeps: :data:`CORE_CLASSES` and every ``Atelier…``
    class, file lists emptied (the pack's lists all)."""
    wanted = [name for name in CORE_CLASSES if name in object_info]
    wanted += sorted(name for name in object_info if name.startswith("Atelier"))
    return {name: _empty_file_lists(object_info[name], name.startswith("Atelier")) for name in wanted}


@functools.cache
def _known_raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(KNOWN_NODES_FILE.read_text(encoding="utf-8"))
    return data["nodes"]


def known_object_info() -> ObjectInfo:
    """The known node definitions as an :class:`ObjectInfo` (no backend needed)."""
    return ObjectInfo(_known_raw())


def with_known_nodes(live: ObjectInfo | Mapping[str, Any] | None) -> ObjectInfo:
    """A backend's ``/object_info`` with the known definitions filling in the classes it lacks."""
    if live is None:
        return known_object_info()
    return ObjectInfo({**_known_raw(), **as_object_info(live).raw})
