# SPDX-License-Identifier: Apache-2.0
"""Choosing the entry style: ComfyUI's typed V3 API where the install has it, the classic one otherwise.

An install is new enough when ``comfy_api.latest`` imports, its ``io`` offers everything in
:data:`V3_NEEDS` and its ``io.Schema`` takes ``search_aliases``; ComfyUI releases before the V3 API (or with an
early, incomplete one) get the classic ``NODE_CLASS_MAPPINGS``. The package exports one style only: ComfyUI
would ignore ``comfy_entrypoint``
next to ``NODE_CLASS_MAPPINGS``.
"""

from __future__ import annotations

import importlib
import inspect
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


def v3_missing() -> str | None:
    """Why this ComfyUI cannot take the pack's V3 nodes, or None when it can."""
    try:
        latest = importlib.import_module("comfy_api.latest")
    except Exception as exc:  # an older install, or a broken comfy_api
        return f"comfy_api.latest does not import ({type(exc).__name__}: {exc})"
    io = getattr(latest, "io", None)
    missing = [name for name in V3_NEEDS if not hasattr(io, name)]
    if not hasattr(latest, "ComfyExtension"):
        missing.insert(0, "ComfyExtension")
    if "Schema" not in missing and "search_aliases" not in _parameters(getattr(io, "Schema", None)):
        missing.append("Schema(search_aliases)")
    return f"comfy_api.latest lacks {', '.join(missing)}" if missing else None


def _parameters(function: object) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(function).parameters)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return frozenset()


def v3_entrypoint() -> Callable[[], Awaitable[Any]] | None:
    """The pack's V3 ``comfy_entrypoint``, or None where the classic style must be used.

    Falls back (saying why in ComfyUI's log) also when the V3 nodes fail to build on this install.
    """
    reason = v3_missing()
    if reason is not None:
        log.info("atelier_nodes: using the classic node style: %s", reason)
        return None
    try:
        from .nodes_v3 import comfy_entrypoint
    except Exception:
        log.warning("atelier_nodes: the V3 nodes failed to load; using the classic node style", exc_info=True)
        return None
    return comfy_entrypoint
