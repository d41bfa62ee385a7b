"""Block plan of the LDM U-Net: which residual blocks, spatial transformers and resamplers exist, where.

Names are the LDM ones (``input_blocks.N.M``, ``middle_block.M``, ``output_blocks.N.M``); each spatial
transformer also gets its diffusers name (``down_blocks.L.attentions.I``, ``mid_block.attentions.0``,
``up_blocks.L.attentions.I``), which is what kohya-format LoRA keys are built from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.devtools.architecture import UNetArch


@dataclass(frozen=True)
class ResBlockSite:
    """A residual block: its LDM name and input/output widths."""

    ldm: str
    c_in: int
    c_out: int


@dataclass(frozen=True)
class TransformerSite:
    """A spatial transformer: LDM name, diffusers name, width and number of transformer blocks."""

    ldm: str
    diffusers: str
    channels: int
    depth: int


@dataclass
class UNetPlan:
    """All blocks of one U-Net architecture."""

    arch: UNetArch
    res_blocks: list[ResBlockSite] = field(default_factory=list)
    transformers: list[TransformerSite] = field(default_factory=list)
    resamplers: list[tuple[str, int]] = field(default_factory=list)
    out_channels_in: int = 0


def plan_unet(arch: UNetArch) -> UNetPlan:
    """Lay out the encoder path, the middle block and the decoder path of ``arch``."""
    plan = UNetPlan(arch)
    skips, channels = _plan_down(plan)
    channels = _plan_middle(plan, channels)
    plan.out_channels_in = _plan_up(plan, skips, channels)
    return plan


def _plan_down(plan: UNetPlan) -> tuple[list[int], int]:
    arch = plan.arch
    channels = arch.model_channels
    skips = [channels]
    index = 1
    last = len(arch.channel_mult) - 1
    for level, mult in enumerate(arch.channel_mult):
        width = arch.model_channels * mult
        for block in range(arch.num_res_blocks):
            plan.res_blocks.append(ResBlockSite(f"input_blocks.{index}.0", channels, width))
            channels = width
            if arch.attention_levels[level]:
                diffusers = f"down_blocks.{level}.attentions.{block}"
                site = TransformerSite(f"input_blocks.{index}.1", diffusers, channels, arch.depth_at(level))
                plan.transformers.append(site)
            skips.append(channels)
            index += 1
        if level != last:
            plan.resamplers.append((f"input_blocks.{index}.0.op", channels))
            skips.append(channels)
            index += 1
    return skips, channels


def _plan_middle(plan: UNetPlan, channels: int) -> int:
    # Without a transformer the LDM middle block is a single residual block.
    plan.res_blocks.append(ResBlockSite("middle_block.0", channels, channels))
    if plan.arch.middle_attention:
        depth = plan.arch.middle_transformer_depth
        plan.transformers.append(TransformerSite("middle_block.1", "mid_block.attentions.0", channels, depth))
        plan.res_blocks.append(ResBlockSite("middle_block.2", channels, channels))
    return channels


def _plan_up(plan: UNetPlan, skips: list[int], channels: int) -> int:
    arch = plan.arch
    levels = len(arch.channel_mult)
    index = 0
    for level in reversed(range(levels)):
        width = arch.model_channels * arch.channel_mult[level]
        up_level = levels - 1 - level
        for block in range(arch.num_res_blocks + 1):
            plan.res_blocks.append(ResBlockSite(f"output_blocks.{index}.0", channels + skips.pop(), width))
            channels = width
            sub = 1
            if arch.attention_levels[level]:
                diffusers = f"up_blocks.{up_level}.attentions.{block}"
                site = TransformerSite(f"output_blocks.{index}.1", diffusers, channels, arch.depth_at(level))
                plan.transformers.append(site)
                sub = 2
            if level != 0 and block == arch.num_res_blocks:
                plan.resamplers.append((f"output_blocks.{index}.{sub}.conv", channels))
            index += 1
    return channels
