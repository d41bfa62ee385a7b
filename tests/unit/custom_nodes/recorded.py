"""What a real ComfyUI v0.33.0 reports in ``/object_info`` for the pack's nodes (combo options emptied).

The recording is the Atelier part of ``comfy_workflows/known_nodes.json`` (the service ships it to build editor
graphs without a backend). The engines test (tests/engines/test_custom_nodes_engine.py) checks that a live
ComfyUI with the pack still reports exactly this, and rewrites it with ``ATELIER_TEST_REFRESH_RECORDINGS=1``.
"""

from __future__ import annotations

from typing import Any

from comfy_workflows.known_nodes import known_object_info


def recorded_object_info() -> dict[str, Any]:
    """The pack's nodes as a real ComfyUI lists them in ``/object_info`` (combo options empty)."""
    raw = known_object_info().raw
    return {name: entry for name, entry in raw.items() if name.startswith("Atelier")}
