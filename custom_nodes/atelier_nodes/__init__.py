# SPDX-License-Identifier: Apache-2.0
"""LoRA Atelier nodes for ComfyUI: a loader for LoRAs trained by LoRA Atelier, and template parameter markers.

Exports exactly one entry style: ``comfy_entrypoint`` (ComfyUI's typed V3 API) where the install offers it,
else the classic ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``. See README.md.
"""

from __future__ import annotations

from .entry import v3_entrypoint

__version__ = "0.1.0"

_ENTRYPOINT = v3_entrypoint()

if _ENTRYPOINT is not None:
    comfy_entrypoint = _ENTRYPOINT
    __all__ = ["comfy_entrypoint"]
else:
    from .nodes_v1 import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
