"""Tensor names and shapes of an SD1.5 single-file checkpoint in the original (LDM) key layout.

The layout is computed from :class:`~orchestrator.devtools.architecture.SD15Arch`; nothing is read from
a reference file. Each tensor also carries how it should be initialised (see :class:`Init`), so that a
random-weight model produces finite images and training losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from orchestrator.devtools.architecture import ClipArch, OpenClipArch, SD15Arch, SDXLArch, UNetArch, VaeArch
from orchestrator.devtools.unet_plan import TransformerSite, UNetPlan, plan_unet

UNET_PREFIX = "model.diffusion_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
VAE_PREFIX = "first_stage_model."

# Residual branches end in a projection whose output is added to the stream; keeping those small keeps a
# deep random network's activations bounded.
RESIDUAL_GAIN = 0.1


class Init(Enum):
    """How a tensor's values are drawn."""

    WEIGHT = "weight"  # N(0, gain / sqrt(fan_in))
    ZEROS = "zeros"
    ONES = "ones"
    EMBEDDING = "embedding"  # N(0, gain)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the checkpoint."""

    name: str
    shape: tuple[int, ...]
    init: Init
    gain: float = 1.0

    @property
    def std(self) -> float:
        """Standard deviation of the normal distribution this tensor is drawn from (0 for constants)."""
        if self.init is Init.EMBEDDING:
            return self.gain
        if self.init is Init.WEIGHT:
            fan_in = math.prod(self.shape[1:])
            return self.gain / math.sqrt(fan_in)
        return 0.0

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


class _Collector:
    """Accumulates tensor specs under a key prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.specs: list[TensorSpec] = []

    def add(self, name: str, shape: tuple[int, ...], init: Init, gain: float = 1.0) -> None:
        self.specs.append(TensorSpec(self.prefix + name, shape, init, gain))

    def linear(self, name: str, fan_in: int, fan_out: int, *, bias: bool = True, gain: float = 1.0) -> None:
        self.add(f"{name}.weight", (fan_out, fan_in), Init.WEIGHT, gain)
        if bias:
            self.add(f"{name}.bias", (fan_out,), Init.ZEROS)

    def conv(self, name: str, c_in: int, c_out: int, kernel: int, *, gain: float = 1.0) -> None:
        self.add(f"{name}.weight", (c_out, c_in, kernel, kernel), Init.WEIGHT, gain)
        self.add(f"{name}.bias", (c_out,), Init.ZEROS)

    def norm(self, name: str, channels: int) -> None:
        self.add(f"{name}.weight", (channels,), Init.ONES)
        self.add(f"{name}.bias", (channels,), Init.ZEROS)


def checkpoint_layout(arch: SD15Arch | SDXLArch) -> list[TensorSpec]:
    """Every tensor of the checkpoint, U-Net first, then the text encoder(s), then VAE."""
    if isinstance(arch, SDXLArch):
        encoders = [*clip_layout(arch.clip_l, SDXL_CLIP_L_PREFIX), *openclip_layout(arch.clip_g)]
    else:
        encoders = clip_layout(arch.clip)
    return [*unet_layout(arch.unet), *encoders, *vae_layout(arch.vae)]


def unet_layout(unet: UNetArch) -> list[TensorSpec]:
    """The denoising U-Net's tensors (``model.diffusion_model.*``)."""
    plan = plan_unet(unet)
    col = _Collector(UNET_PREFIX)
    col.linear("time_embed.0", unet.model_channels, unet.time_embed_dim)
    col.linear("time_embed.2", unet.time_embed_dim, unet.time_embed_dim)
    if unet.adm_in_channels is not None:
        col.linear("label_emb.0.0", unet.adm_in_channels, unet.time_embed_dim)
        col.linear("label_emb.0.2", unet.time_embed_dim, unet.time_embed_dim)
    col.conv("input_blocks.0.0", unet.in_channels, unet.model_channels, 3)
    for res in plan.res_blocks:
        _unet_res_block(col, res.ldm, res.c_in, res.c_out, unet.time_embed_dim)
    for site in plan.transformers:
        _spatial_transformer(col, site, plan)
    for name, channels in plan.resamplers:
        col.conv(name, channels, channels, 3)
    col.norm("out.0", plan.out_channels_in)
    col.conv("out.2", plan.out_channels_in, unet.out_channels, 3)
    return col.specs


def _unet_res_block(col: _Collector, name: str, c_in: int, c_out: int, emb: int) -> None:
    col.norm(f"{name}.in_layers.0", c_in)
    col.conv(f"{name}.in_layers.2", c_in, c_out, 3)
    col.linear(f"{name}.emb_layers.1", emb, c_out)
    col.norm(f"{name}.out_layers.0", c_out)
    col.conv(f"{name}.out_layers.3", c_out, c_out, 3, gain=RESIDUAL_GAIN)
    if c_in != c_out:
        col.conv(f"{name}.skip_connection", c_in, c_out, 1)


def _projection(col: _Collector, name: str, channels: int, linear: bool, gain: float) -> None:
    if linear:
        col.linear(name, channels, channels, gain=gain)
    else:
        col.conv(name, channels, channels, 1, gain=gain)


def _spatial_transformer(col: _Collector, site: TransformerSite, plan: UNetPlan) -> None:
    unet, name, ch = plan.arch, site.ldm, site.channels
    col.norm(f"{name}.norm", ch)
    _projection(col, f"{name}.proj_in", ch, unet.linear_projections, 1.0)
    for depth in range(site.depth):
        block = f"{name}.transformer_blocks.{depth}"
        for attn, context in (("attn1", ch), ("attn2", unet.context_dim)):
            col.linear(f"{block}.{attn}.to_q", ch, ch, bias=False)
            col.linear(f"{block}.{attn}.to_k", context, ch, bias=False)
            col.linear(f"{block}.{attn}.to_v", context, ch, bias=False)
            col.linear(f"{block}.{attn}.to_out.0", ch, ch, gain=RESIDUAL_GAIN)
        inner = ch * unet.ff_mult
        col.linear(f"{block}.ff.net.0.proj", ch, 2 * inner)
        col.linear(f"{block}.ff.net.2", inner, ch, gain=RESIDUAL_GAIN)
        for norm in ("norm1", "norm2", "norm3"):
            col.norm(f"{block}.{norm}", ch)
    _projection(col, f"{name}.proj_out", ch, unet.linear_projections, RESIDUAL_GAIN)


def clip_layout(clip: ClipArch, prefix: str = CLIP_PREFIX) -> list[TensorSpec]:
    """The CLIP text encoder's tensors, Hugging Face ``CLIPTextModel`` names under ``prefix``."""
    col = _Collector(prefix)
    col.add("embeddings.token_embedding.weight", (clip.vocab_size, clip.hidden), Init.EMBEDDING, 0.02)
    col.add("embeddings.position_embedding.weight", (clip.max_positions, clip.hidden), Init.EMBEDDING, 0.01)
    for index in range(clip.layers):
        layer = f"encoder.layers.{index}"
        for proj in ("k_proj", "v_proj", "q_proj"):
            col.linear(f"{layer}.self_attn.{proj}", clip.hidden, clip.hidden)
        col.linear(f"{layer}.self_attn.out_proj", clip.hidden, clip.hidden, gain=RESIDUAL_GAIN)
        col.norm(f"{layer}.layer_norm1", clip.hidden)
        col.linear(f"{layer}.mlp.fc1", clip.hidden, clip.intermediate)
        col.linear(f"{layer}.mlp.fc2", clip.intermediate, clip.hidden, gain=RESIDUAL_GAIN)
        col.norm(f"{layer}.layer_norm2", clip.hidden)
    col.norm("final_layer_norm", clip.hidden)
    return col.specs


def openclip_layout(clip: OpenClipArch, prefix: str = SDXL_CLIP_G_PREFIX) -> list[TensorSpec]:
    """SDXL's OpenCLIP ViT-bigG text encoder in OpenCLIP's key names (fused q/k/v ``in_proj``), as the
    single-file SDXL checkpoints store it; sd-scripts and ComfyUI both convert it on load.
    """
    col = _Collector(prefix)
    width = clip.width
    col.add("token_embedding.weight", (clip.vocab_size, width), Init.EMBEDDING, 0.02)
    col.add("positional_embedding", (clip.max_positions, width), Init.EMBEDDING, 0.01)
    for index in range(clip.layers):
        block = f"transformer.resblocks.{index}"
        col.norm(f"{block}.ln_1", width)
        col.add(f"{block}.attn.in_proj_weight", (3 * width, width), Init.WEIGHT)
        col.add(f"{block}.attn.in_proj_bias", (3 * width,), Init.ZEROS)
        col.linear(f"{block}.attn.out_proj", width, width, gain=RESIDUAL_GAIN)
        col.norm(f"{block}.ln_2", width)
        col.linear(f"{block}.mlp.c_fc", width, clip.intermediate)
        col.linear(f"{block}.mlp.c_proj", clip.intermediate, width, gain=RESIDUAL_GAIN)
    col.norm("ln_final", width)
    col.add("text_projection", (width, clip.projection), Init.WEIGHT)
    return col.specs


def _vae_res_block(col: _Collector, name: str, c_in: int, c_out: int) -> None:
    col.norm(f"{name}.norm1", c_in)
    col.conv(f"{name}.conv1", c_in, c_out, 3)
    col.norm(f"{name}.norm2", c_out)
    col.conv(f"{name}.conv2", c_out, c_out, 3, gain=RESIDUAL_GAIN)
    if c_in != c_out:
        col.conv(f"{name}.nin_shortcut", c_in, c_out, 1)


def _vae_middle(col: _Collector, name: str, ch: int) -> None:
    _vae_res_block(col, f"{name}.block_1", ch, ch)
    col.norm(f"{name}.attn_1.norm", ch)
    for proj in ("q", "k", "v"):
        col.conv(f"{name}.attn_1.{proj}", ch, ch, 1)
    col.conv(f"{name}.attn_1.proj_out", ch, ch, 1, gain=RESIDUAL_GAIN)
    _vae_res_block(col, f"{name}.block_2", ch, ch)


def _vae_encoder(col: _Collector, vae: VaeArch) -> None:
    ch = vae.encoder_channels
    col.conv("encoder.conv_in", vae.image_channels, ch, 3)
    c_in = ch
    last = len(vae.channel_mult) - 1
    for level, mult in enumerate(vae.channel_mult):
        c_out = ch * mult
        for block in range(vae.num_res_blocks):
            _vae_res_block(col, f"encoder.down.{level}.block.{block}", c_in, c_out)
            c_in = c_out
        if level != last:
            col.conv(f"encoder.down.{level}.downsample.conv", c_out, c_out, 3)
    _vae_middle(col, "encoder.mid", c_in)
    col.norm("encoder.norm_out", c_in)
    col.conv("encoder.conv_out", c_in, 2 * vae.z_channels, 3)


def _vae_decoder(col: _Collector, vae: VaeArch) -> None:
    ch = vae.decoder_channels
    c_in = ch * vae.channel_mult[-1]
    col.conv("decoder.conv_in", vae.z_channels, c_in, 3)
    _vae_middle(col, "decoder.mid", c_in)
    for level in reversed(range(len(vae.channel_mult))):
        c_out = ch * vae.channel_mult[level]
        for block in range(vae.num_res_blocks + 1):
            _vae_res_block(col, f"decoder.up.{level}.block.{block}", c_in, c_out)
            c_in = c_out
        if level != 0:
            col.conv(f"decoder.up.{level}.upsample.conv", c_out, c_out, 3)
    col.norm("decoder.norm_out", c_in)
    col.conv("decoder.conv_out", c_in, vae.image_channels, 3)


def vae_layout(vae: VaeArch) -> list[TensorSpec]:
    """The KL autoencoder's tensors (``first_stage_model.*``)."""
    col = _Collector(VAE_PREFIX)
    _vae_encoder(col, vae)
    col.conv("quant_conv", 2 * vae.z_channels, 2 * vae.z_channels, 1)
    col.conv("post_quant_conv", vae.z_channels, vae.z_channels, 1)
    _vae_decoder(col, vae)
    return col.specs
