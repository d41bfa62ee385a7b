"""Shared fixtures: the recorded /object_info of a real ComfyUI v0.33.0, and model specs for every family."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.templates import BaseModelSpec, LoraRef

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "comfyui" / "object_info.json"

SPECS = {
    "sd15": BaseModelSpec(family="sd15", checkpoint="sd15_slim_random.safetensors"),
    "sdxl": BaseModelSpec(family="sdxl", checkpoint="sdxl_base.safetensors", vae="sdxl_vae.safetensors"),
    "flux": BaseModelSpec(
        family="flux",
        unet="flux1-dev.safetensors",
        clip_l="clip_l.safetensors",
        t5xxl="t5xxl_fp16.safetensors",
        vae="ae.safetensors",
    ),
}
LORA_FILES = ("lab_tiny_lora.safetensors", "subject/v2/face.safetensors", "style.safetensors")

# (class, input) pairs whose combo lists name model files.
_MODEL_COMBOS = {
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LoraLoader", "lora_name"): "loras",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("UNETLoader", "unet_name"): "unets",
    ("DualCLIPLoader", "clip_name1"): "clips",
    ("DualCLIPLoader", "clip_name2"): "clips",
    ("VAELoader", "vae_name"): "vaes",
}


def load_raw_object_info() -> dict[str, Any]:
    """A fresh copy of the recorded /object_info."""
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def offering(raw: Mapping[str, Any], **names: Iterable[str]) -> dict[str, Any]:
    """``raw`` with extra model file names offered (keys: checkpoints, loras, unets, clips, vaes).

    Only the touched classes are copied, so this stays cheap.
    """
    result = dict(raw)
    for (class_type, input_name), kind in _MODEL_COMBOS.items():
        extra = list(names.get(kind, ()))
        if not extra:
            continue
        if result[class_type] is raw[class_type]:
            result[class_type] = copy.deepcopy(raw[class_type])
        spec = result[class_type]["input"]["required"][input_name]
        spec[0] = sorted({*spec[0], *extra})
    return result


@pytest.fixture(scope="session")
def raw_object_info() -> dict[str, Any]:
    """The recorded /object_info, as the backend sent it (do not modify)."""
    return load_raw_object_info()


@pytest.fixture(scope="session")
def object_info(raw_object_info: dict[str, Any]) -> ObjectInfo:
    """The recorded /object_info as offered by a backend that has every model in SPECS and LORA_FILES."""
    return ObjectInfo(offering(raw_object_info, **all_model_names()))


def all_model_names() -> dict[str, list[str]]:
    """Every file name the test specs and LoRAs use, grouped by combo kind."""
    return {
        "checkpoints": [s.checkpoint for s in SPECS.values() if s.checkpoint],
        "loras": list(LORA_FILES),
        "unets": [s.unet for s in SPECS.values() if s.unet],
        "clips": [n for s in SPECS.values() for n in (s.clip_l, s.t5xxl) if n],
        "vaes": [s.vae for s in SPECS.values() if s.vae],
    }


def lora_refs(count: int) -> list[LoraRef]:
    """``count`` resolved LoRAs with distinct strengths."""
    return [
        LoraRef(name=LORA_FILES[i % len(LORA_FILES)], strength_model=0.5 + i / 10, strength_clip=0.25 + i / 10)
        for i in range(count)
    ]
