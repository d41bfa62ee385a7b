"""The node definitions the service ships (comfy_workflows/known_nodes.json) are what ComfyUI v0.33.0 reports."""

from __future__ import annotations

from typing import Any

from comfy_workflows.known_nodes import CORE_CLASSES, known_definitions, known_object_info, with_known_nodes
from comfy_workflows.object_info import ObjectInfo


def test_the_core_part_is_the_recorded_object_info(raw_object_info: dict[str, Any]) -> None:
    shipped = known_object_info().raw
    assert known_definitions(raw_object_info) == {name: shipped[name] for name in CORE_CLASSES}


def test_file_lists_are_emptied_and_built_in_options_kept() -> None:
    shipped = known_object_info()
    assert shipped.offered("CheckpointLoaderSimple", "ckpt_name") == ()
    assert shipped.offered("LoadImage", "image") == ()
    assert "euler" in shipped.offered("KSampler", "sampler_name")
    assert shipped.offered("AtelierCheckpointInput", "ckpt_name") == ()


def test_a_backend_overrides_the_known_definitions_and_gains_the_missing_ones(raw_object_info: dict[str, Any]) -> None:
    merged = with_known_nodes(ObjectInfo(raw_object_info))
    assert merged.offered("CheckpointLoaderSimple", "ckpt_name") == ("sd15_slim_random.safetensors",)
    assert merged.node("AtelierPromptInput") is not None  # the backend lacks the pack
    assert with_known_nodes(None).node("KSampler") is not None
