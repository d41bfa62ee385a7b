"""Architecture parameters of the Stable Diffusion 1.5 and SDXL test models we generate.

Everything about the tensor layout is derived from these numbers by :mod:`orchestrator.devtools.layout`
(and :mod:`orchestrator.devtools.sdxl_layout`). ``FULL`` has the exact SD1.5 hyper-parameters (kohya
sd-scripts hard-codes them); ``SLIM`` keeps what ComfyUI needs to detect an SD1.5 model and load it without
missing keys (320 model channels, a 768-wide cross-attention context, the fixed 12-layer CLIP ViT-L text
encoder and the fixed-width VAE encoder) and shrinks everything ComfyUI reads from the file instead: U-Net
depth and width per level, and VAE decoder width. ``SDXL_FULL`` has SDXL base 1.0's exact shapes; there is
no slim SDXL, because ComfyUI and sd-scripts both recognise SDXL by its per-level transformer depths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Variant = Literal["slim", "full"]
VARIANTS: tuple[Variant, ...] = ("slim", "full")


@dataclass(frozen=True)
class UNetArch:
    """Hyper-parameters of the LDM-layout denoising U-Net (``model.diffusion_model.*``)."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[bool, ...] = (True, True, True, False)
    transformer_depth: int = 1
    middle_attention: bool = True
    context_dim: int = 768
    num_heads: int = 8
    time_embed_mult: int = 4
    ff_mult: int = 4
    linear_projections: bool = False
    level_depths: tuple[int, ...] | None = None  # transformer blocks per level; None: transformer_depth
    middle_depth: int | None = None  # transformer blocks of the middle block; None: transformer_depth
    adm_in_channels: int | None = None  # SDXL's size/crop conditioning vector (``label_emb``); None: none

    def __post_init__(self) -> None:
        if len(self.attention_levels) != len(self.channel_mult):
            raise ValueError("attention_levels needs one entry per channel_mult level")
        if self.level_depths is not None and len(self.level_depths) != len(self.channel_mult):
            raise ValueError("level_depths needs one entry per channel_mult level")
        if not any(self.attention_levels) and not self.middle_attention:
            raise ValueError("at least one spatial transformer is needed to carry the context dimension")
        for mult in self.channel_mult:
            if (self.model_channels * mult) % 32:
                raise ValueError("every level's width must be divisible by 32 (GroupNorm groups)")

    @property
    def time_embed_dim(self) -> int:
        """Width of the timestep embedding MLP."""
        return self.model_channels * self.time_embed_mult

    def depth_at(self, level: int) -> int:
        """Transformer blocks in each spatial transformer of ``level`` (0 where the level has no attention)."""
        if not self.attention_levels[level]:
            return 0
        return self.transformer_depth if self.level_depths is None else self.level_depths[level]

    @property
    def middle_transformer_depth(self) -> int:
        """Transformer blocks in the middle block's spatial transformer."""
        return self.transformer_depth if self.middle_depth is None else self.middle_depth


@dataclass(frozen=True)
class ClipArch:
    """Hyper-parameters of the CLIP ViT-L/14 text encoder (``cond_stage_model.transformer.text_model.*``)."""

    vocab_size: int = 49408
    max_positions: int = 77
    hidden: int = 768
    intermediate: int = 3072
    layers: int = 12


@dataclass(frozen=True)
class VaeArch:
    """Hyper-parameters of the KL autoencoder (``first_stage_model.*``)."""

    image_channels: int = 3
    z_channels: int = 4
    encoder_channels: int = 128
    decoder_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2


@dataclass(frozen=True)
class SD15Arch:
    """A whole single-file SD1.5 checkpoint: U-Net, text encoder and VAE, stored as ``dtype``."""

    unet: UNetArch = field(default_factory=UNetArch)
    clip: ClipArch = field(default_factory=ClipArch)
    vae: VaeArch = field(default_factory=VaeArch)
    dtype: Literal["float16", "float32"] = "float16"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in the file's metadata so that a rerun can tell it is up to date."""
        return _without_none(asdict(self))


def _without_none(value: dict[str, Any]) -> dict[str, Any]:
    """Unset optional fields left out, so that adding one does not make earlier files look out of date."""
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}


@dataclass(frozen=True)
class OpenClipArch:
    """Hyper-parameters of SDXL's second text encoder, OpenCLIP ViT-bigG/14, in OpenCLIP's own key names."""

    vocab_size: int = 49408
    max_positions: int = 77
    width: int = 1280
    intermediate: int = 5120
    layers: int = 32
    projection: int = 1280


@dataclass(frozen=True)
class SDXLArch:
    """A whole single-file SDXL checkpoint: U-Net, CLIP ViT-L, OpenCLIP ViT-bigG and VAE, stored as ``dtype``."""

    unet: UNetArch = field(
        default_factory=lambda: UNetArch(
            channel_mult=(1, 2, 4),
            attention_levels=(False, True, True),
            level_depths=(0, 2, 10),
            middle_depth=10,
            context_dim=2048,
            linear_projections=True,
            adm_in_channels=2816,
        )
    )
    clip_l: ClipArch = field(default_factory=ClipArch)
    clip_g: OpenClipArch = field(default_factory=OpenClipArch)
    vae: VaeArch = field(default_factory=VaeArch)
    dtype: Literal["float16", "float32"] = "float16"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in the file's metadata."""
        return _without_none(asdict(self))


FULL = SD15Arch()

SLIM = SD15Arch(
    unet=UNetArch(channel_mult=(1,), num_res_blocks=1, attention_levels=(True,)),
    vae=VaeArch(decoder_channels=32),
)


SDXL_FULL = SDXLArch()


def arch_for(variant: Variant) -> SD15Arch:
    """The architecture of a named variant."""
    if variant == "slim":
        return SLIM
    if variant == "full":
        return FULL
    raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
