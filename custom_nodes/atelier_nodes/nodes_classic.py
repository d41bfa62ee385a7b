# SPDX-License-Identifier: Apache-2.0
"""The pack in ComfyUI's classic style: ``NODE_CLASS_MAPPINGS`` and ``NODE_DISPLAY_NAME_MAPPINGS``.

Imported only where the V3 API is missing or incomplete (see :mod:`.entry`).
"""

from __future__ import annotations

from typing import Any

from .nodes_classic_loaders import LOADER_NODES
from .nodes_classic_markers import MARKER_NODES

DISPLAY_NAMES = {
    "AtelierLoraLoader": "Atelier LoRA Loader",
    "AtelierLoraLoaderModelOnly": "Atelier LoRA Loader (model only)",
    "AtelierRemoteLoraLoader": "Atelier Remote LoRA Loader",
    "AtelierPromptInput": "Atelier Prompt (parameter)",
    "AtelierIntInput": "Atelier Integer (parameter)",
    "AtelierFloatInput": "Atelier Float (parameter)",
    "AtelierSeedInput": "Atelier Seed (parameter)",
    "AtelierImageInput": "Atelier Image (parameter)",
    "AtelierCheckpointInput": "Atelier Checkpoint (parameter)",
    "AtelierLoraInput": "Atelier LoRA file (parameter)",
    "AtelierChoiceInput": "Atelier Choice (parameter)",
}

NODE_CLASS_MAPPINGS: dict[str, type[Any]] = {node.__name__: node for node in (*LOADER_NODES, *MARKER_NODES)}
"""Node id -> class, for ComfyUI's classic loader (the class name is the node id)."""

NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {node_id: DISPLAY_NAMES[node_id] for node_id in NODE_CLASS_MAPPINGS}
"""Node id -> the name the editor shows."""
