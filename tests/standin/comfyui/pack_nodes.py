"""What a ComfyUI with the Atelier node pack installed lists in ``/object_info`` for the pack's dropdowns.

The pack's file-name markers list the same files as the core loaders (checkpoints, LoRAs, input images); the
recording of its nodes has those lists emptied (see :mod:`comfy_workflows.known_nodes`). The engines tests hold
this to a real ComfyUI with the pack.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from tests.standin.comfyui.recordings import combo_options

# (pack class, input) -> (core class, input) whose options it lists too.
SAME_LIST = {
    ("AtelierCheckpointInput", "ckpt_name"): ("CheckpointLoaderSimple", "ckpt_name"),
    ("AtelierLoraInput", "lora_name"): ("LoraLoader", "lora_name"),
    ("AtelierImageInput", "image"): ("LoadImage", "image"),
}


def _spec(info: Mapping[str, Any], class_type: str, name: str) -> Any:
    inputs = info.get(class_type, {}).get("input", {})
    return (inputs.get("required") or {}).get(name) or (inputs.get("optional") or {}).get(name)


def with_pack_options(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` with the pack's file-name markers listing what the core loaders of ``info`` list."""
    result = dict(info)
    for (class_type, name), (core_class, core_name) in SAME_LIST.items():
        if class_type not in result:
            continue
        options = combo_options(_spec(info, core_class, core_name)) or []
        result[class_type] = copy.deepcopy(result[class_type])
        _spec(result, class_type, name)[1]["options"] = list(options)
    return result
