# SPDX-License-Identifier: Apache-2.0
"""LoRA Atelier nodes for ComfyUI: LoRA loaders (local files or a LoRA Atelier server), template parameter
markers, and the Atelier sidebar (``web/``) with the routes it uses on ComfyUI's own server.

Exports exactly one entry style: ``comfy_entrypoint`` (ComfyUI's typed V3 API) where the install offers it,
else the classic ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``. See README.md.
"""

from __future__ import annotations

from .entry import v3_entrypoint
from .server_routes import install_routes

__version__ = "0.2.0"

WEB_DIRECTORY = "./web"
"""The sidebar's JavaScript, served by ComfyUI under ``/extensions/<this folder>/``."""

install_routes()

_ENTRYPOINT = v3_entrypoint()

if _ENTRYPOINT is not None:
    comfy_entrypoint = _ENTRYPOINT
    __all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
else:
    from .nodes_classic import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
