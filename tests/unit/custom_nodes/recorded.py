"""What a real ComfyUI v0.33.0 reports in ``/object_info`` for the pack's nodes (``atelier_object_info.json``).

Combo options are emptied in the recording (they depend on the install's files). The engines test
(tests/engines/test_custom_nodes_engine.py) checks that a live ComfyUI still reports exactly this; refresh the
file from a live ``/object_info`` (options emptied) whenever a node's spec changes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).with_name("atelier_object_info.json")


def recorded_object_info() -> dict[str, Any]:
    """The pack's nodes as a real ComfyUI lists them in ``/object_info`` (combo options empty)."""
    data: dict[str, Any] = json.loads(RECORDED.read_text(encoding="utf-8"))
    return data
