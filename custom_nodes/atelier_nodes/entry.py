# SPDX-License-Identifier: Apache-2.0
"""Choosing the entry style: ComfyUI's typed V3 API where the install has it, the classic one otherwise.

An install is new enough when ``comfy_api.latest`` imports and its ``io`` offers everything in
:data:`V3_NEEDS`; ComfyUI releases before the V3 API (or with an early, incomplete one) get the classic
``NODE_CLASS_MAPPINGS``. The package exports one style only: ComfyUI would ignore ``comfy_entrypoint``
next to ``NODE_CLASS_MAPPINGS``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

V3_NEEDS = (
    "ComfyNode",
    "Schema",
    "NodeOutput",
    "Custom",
    "Model",
    "Clip",
    "Image",
    "Mask",
    "String",
    "Int",
    "Float",
    "Combo",
    "UploadType",
    "FolderType",
)
"""What the pack uses from ``comfy_api.latest.io``."""


def v3_available() -> bool:
    """Whether this ComfyUI offers the V3 API the pack needs (``comfy_api.latest`` with ``ComfyExtension``)."""
    try:
        latest = importlib.import_module("comfy_api.latest")
    except Exception:  # an older install, or a broken comfy_api: use the classic style
        return False
    io = getattr(latest, "io", None)
    missing = [name for name in V3_NEEDS if not hasattr(io, name)]
    if missing or not hasattr(latest, "ComfyExtension"):
        log.info("atelier_nodes: ComfyUI's V3 API lacks %s; using the classic node style", missing or "ComfyExtension")
        return False
    return True


def v3_entrypoint() -> Callable[[], Awaitable[Any]] | None:
    """The pack's V3 ``comfy_entrypoint``, or None where the classic style must be used.

    Falls back (with a warning in ComfyUI's log) also when the V3 nodes fail to build on this install.
    """
    if not v3_available():
        log.info("atelier_nodes: using the classic node style (no usable comfy_api.latest)")
        return None
    try:
        from .nodes_v3 import comfy_entrypoint
    except Exception:
        log.warning("atelier_nodes: the V3 nodes failed to load; using the classic node style", exc_info=True)
        return None
    return comfy_entrypoint
