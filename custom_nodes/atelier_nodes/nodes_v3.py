# SPDX-License-Identifier: Apache-2.0
"""The pack as a V3 ``ComfyExtension``: its node classes and ``comfy_entrypoint``.

Imported only where ``comfy_api.latest`` offers everything :data:`.entry.V3_NEEDS` lists (see :mod:`.entry`).
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .nodes_v3_loaders import LOADER_NODES
from .nodes_v3_markers import MARKER_NODES

NODE_CLASSES: tuple[type[io.ComfyNode], ...] = (*LOADER_NODES, *MARKER_NODES)
"""Every node of the pack, in menu order."""


class AtelierExtension(ComfyExtension):
    """The LoRA Atelier node pack."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """Every node of the pack."""
        return list(NODE_CLASSES)


async def comfy_entrypoint() -> AtelierExtension:
    """ComfyUI's V3 entry point: the pack's extension."""
    return AtelierExtension()
