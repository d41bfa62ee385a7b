"""Model families (which sd-scripts script and network module) and the fast/balanced/quality presets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class ModelFamily(StrEnum):
    """Base-model families we train LoRAs for."""

    SD15 = "sd15"
    SDXL = "sdxl"
    FLUX = "flux"


class Preset(StrEnum):
    """Named trade-offs between training time and quality."""

    FAST = "fast"
    BALANCED = "balanced"
    QUALITY = "quality"


class Optimizer(StrEnum):
    """sd-scripts ``optimizer_type`` values we offer (8-bit ones need bitsandbytes and a GPU)."""

    ADAMW = "AdamW"
    ADAMW8BIT = "AdamW8bit"
    ADAFACTOR = "Adafactor"
    LION = "Lion"
    PRODIGY = "Prodigy"

    @property
    def needs_gpu(self) -> bool:
        """bitsandbytes optimizers run on CUDA only."""
        return self is Optimizer.ADAMW8BIT

    @property
    def adaptive(self) -> bool:
        """Optimizers that expect a learning rate around 1.0."""
        return self is Optimizer.PRODIGY


@dataclass(frozen=True)
class FamilySpec:
    """How sd-scripts trains a LoRA for one family.

    ``gpu_args``, ``cpu_args`` and ``common_args`` are extra ``--config_file`` keys (sd-scripts' argument
    names): the GPU ones are left out when training on CPU, the CPU ones (which may override the CPU's
    default ``mixed_precision = "no"``) are only used there.
    """

    family: ModelFamily
    script: str
    network_module: str
    gpu_mixed_precision: str
    save_precision: str
    needs_flux_parts: bool = False
    common_args: Mapping[str, Any] = field(default_factory=dict)
    gpu_args: Mapping[str, Any] = field(default_factory=dict)
    cpu_args: Mapping[str, Any] = field(default_factory=dict)


FAMILIES: Mapping[ModelFamily, FamilySpec] = MappingProxyType(
    {
        ModelFamily.SD15: FamilySpec(
            ModelFamily.SD15, "train_network.py", "networks.lora", "fp16", "fp16", common_args={"sdpa": True}
        ),
        ModelFamily.SDXL: FamilySpec(
            ModelFamily.SDXL,
            "sdxl_train_network.py",
            "networks.lora",
            "bf16",
            "fp16",
            common_args={"sdpa": True, "network_train_unet_only": True, "cache_text_encoder_outputs": True},
            gpu_args={"gradient_checkpointing": True, "no_half_vae": True},
            # A bf16 U-Net on CPU: 2 steps at 64 px on a 2-core machine with AVX-512 BF16 peaked at 11.9 GB RSS
            # in 4:54 (66 s/step), against 17.7 GB and 7:00 (136 s/step) in fp32; same losses.
            cpu_args={"mixed_precision": "bf16", "full_bf16": True},
        ),
        ModelFamily.FLUX: FamilySpec(
            ModelFamily.FLUX,
            "flux_train_network.py",
            "networks.lora_flux",
            "bf16",
            "bf16",
            needs_flux_parts=True,
            common_args={
                "sdpa": True,
                "network_train_unet_only": True,
                "cache_text_encoder_outputs": True,
                "timestep_sampling": "shift",
                "discrete_flow_shift": 3.1582,
                "model_prediction_type": "raw",
                "guidance_scale": 1.0,
            },
            gpu_args={"gradient_checkpointing": True, "fp8_base": True},
        ),
    }
)


@dataclass(frozen=True)
class PresetValues:
    """The training parameters a preset fixes (a request may override each)."""

    steps: int
    network_dim: int
    network_alpha: float
    learning_rate: float
    optimizer: Optimizer
    resolution: int
    batch_size: int


_A8 = Optimizer.ADAMW8BIT
PRESETS: Mapping[ModelFamily, Mapping[Preset, PresetValues]] = MappingProxyType(
    {
        ModelFamily.SD15: {
            Preset.FAST: PresetValues(600, 8, 4.0, 1e-4, _A8, 512, 2),
            Preset.BALANCED: PresetValues(1200, 16, 8.0, 1e-4, _A8, 512, 2),
            Preset.QUALITY: PresetValues(2400, 32, 16.0, 5e-5, _A8, 768, 2),
        },
        ModelFamily.SDXL: {
            Preset.FAST: PresetValues(800, 8, 4.0, 1e-4, _A8, 1024, 1),
            Preset.BALANCED: PresetValues(1600, 16, 8.0, 1e-4, _A8, 1024, 1),
            Preset.QUALITY: PresetValues(3000, 32, 16.0, 5e-5, _A8, 1024, 2),
        },
        ModelFamily.FLUX: {
            Preset.FAST: PresetValues(500, 8, 8.0, 1e-4, _A8, 512, 1),
            Preset.BALANCED: PresetValues(1000, 16, 16.0, 1e-4, _A8, 768, 1),
            Preset.QUALITY: PresetValues(2000, 32, 32.0, 8e-5, _A8, 1024, 1),
        },
    }
)
