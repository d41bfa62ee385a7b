"""Which modules a kohya sd-scripts LoRA (``networks.lora``) adapts in an SD1.5 model, and their key names.

kohya adapts the Linear and 1x1-conv layers inside every U-Net spatial transformer and the attention and MLP
projections of every CLIP encoder layer; it names them after the diffusers/transformers module path with
dots replaced by underscores, under ``lora_unet_`` and ``lora_te_``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.devtools.architecture import SD15Arch
from orchestrator.devtools.layout import CLIP_PREFIX, UNET_PREFIX, checkpoint_layout
from orchestrator.devtools.unet_plan import plan_unet

_ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")
_CLIP_PROJECTIONS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj")
_CLIP_MLP = ("mlp.fc1", "mlp.fc2")


@dataclass(frozen=True)
class LoraTarget:
    """One adapted module: its kohya key stem and the checkpoint weight it modifies."""

    kohya: str
    model_weight: str
    fan_in: int
    fan_out: int
    conv: bool

    def down_shape(self, rank: int) -> tuple[int, ...]:
        """Shape of ``<kohya>.lora_down.weight``."""
        return (rank, self.fan_in, 1, 1) if self.conv else (rank, self.fan_in)

    def up_shape(self, rank: int) -> tuple[int, ...]:
        """Shape of ``<kohya>.lora_up.weight``."""
        return (self.fan_out, rank, 1, 1) if self.conv else (self.fan_out, rank)


def _unet_module_paths(transformer_depth: int) -> list[str]:
    paths = ["proj_in", "proj_out"]
    for depth in range(transformer_depth):
        block = f"transformer_blocks.{depth}"
        for attn in ("attn1", "attn2"):
            paths.extend(f"{block}.{attn}.{proj}" for proj in _ATTENTION_PROJECTIONS)
        paths.extend((f"{block}.ff.net.0.proj", f"{block}.ff.net.2"))
    return paths


def _module_pairs(arch: SD15Arch) -> list[tuple[str, str]]:
    """(kohya key stem, checkpoint weight name) for every adapted module."""
    pairs: list[tuple[str, str]] = []
    for site in plan_unet(arch.unet).transformers:
        for path in _unet_module_paths(site.depth):
            kohya = "lora_unet_" + f"{site.diffusers}.{path}".replace(".", "_")
            pairs.append((kohya, f"{UNET_PREFIX}{site.ldm}.{path}.weight"))
    for layer in range(arch.clip.layers):
        for path in (*_CLIP_PROJECTIONS, *_CLIP_MLP):
            module = f"encoder.layers.{layer}.{path}"
            kohya = "lora_te_text_model_" + module.replace(".", "_")
            pairs.append((kohya, f"{CLIP_PREFIX}{module}.weight"))
    return pairs


def lora_targets(arch: SD15Arch) -> list[LoraTarget]:
    """Every module a kohya LoRA adapts, with shapes read from the checkpoint layout of ``arch``."""
    shapes = {spec.name: spec.shape for spec in checkpoint_layout(arch)}
    targets = []
    for kohya, weight in _module_pairs(arch):
        shape = shapes[weight]
        targets.append(LoraTarget(kohya, weight, fan_in=shape[1], fan_out=shape[0], conv=len(shape) == 4))
    return targets
