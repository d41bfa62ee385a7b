"""The random-weight SDXL checkpoint: SDXL base 1.0's keys and shapes, the SD1.5 files unchanged, the CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from orchestrator.devtools import commands, models
from orchestrator.devtools.architecture import FULL, SDXL_FULL, ClipArch, OpenClipArch, SDXLArch, UNetArch, VaeArch
from orchestrator.devtools.layout import (
    SDXL_CLIP_G_PREFIX,
    SDXL_CLIP_L_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    TensorSpec,
    checkpoint_layout,
)
from orchestrator.devtools.safetensors_io import PARAMS_KEY, encode_params, read_metadata
from orchestrator.modelfiles import family_of

TINY_SDXL = SDXLArch(
    unet=UNetArch(
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_levels=(False, True),
        level_depths=(0, 2),
        middle_depth=3,
        context_dim=24,
        linear_projections=True,
        adm_in_channels=40,
    ),
    clip_l=ClipArch(vocab_size=50, max_positions=8, hidden=16, intermediate=32, layers=2),
    clip_g=OpenClipArch(vocab_size=50, max_positions=8, width=8, intermediate=16, layers=2, projection=8),
    vae=VaeArch(encoder_channels=32, decoder_channels=32, channel_mult=(1, 2), num_res_blocks=1),
)


def _part(specs: list[TensorSpec], prefix: str) -> list[TensorSpec]:
    return [spec for spec in specs if spec.name.startswith(prefix)]


def test_sdxl_layout_has_sdxl_base_key_and_parameter_counts() -> None:
    # Counts of SDXL base 1.0 (sd-scripts' SdxlUNet2DConditionModel has the same 1,680 U-Net tensors).
    specs = checkpoint_layout(SDXL_FULL)
    prefixes = (UNET_PREFIX, SDXL_CLIP_L_PREFIX, SDXL_CLIP_G_PREFIX, VAE_PREFIX)
    counts = {prefix: len(_part(specs, prefix)) for prefix in prefixes}
    params = {prefix: sum(s.numel for s in _part(specs, prefix)) for prefix in prefixes}
    assert counts == {UNET_PREFIX: 1680, SDXL_CLIP_L_PREFIX: 196, SDXL_CLIP_G_PREFIX: 389, VAE_PREFIX: 248}
    assert params == {
        UNET_PREFIX: 2_567_463_684,
        SDXL_CLIP_L_PREFIX: 123_060_480,
        SDXL_CLIP_G_PREFIX: 694_659_840,
        VAE_PREFIX: 83_653_863,
    }
    assert len(specs) == sum(counts.values()) == len({spec.name for spec in specs})
    assert family_of([spec.name for spec in specs]) == "sdxl"


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        (f"{UNET_PREFIX}label_emb.0.0.weight", (1280, 2816)),
        (f"{UNET_PREFIX}input_blocks.4.1.proj_in.weight", (640, 640)),  # linear projections
        (f"{UNET_PREFIX}input_blocks.4.1.transformer_blocks.1.attn2.to_k.weight", (640, 2048)),
        (f"{UNET_PREFIX}input_blocks.7.1.transformer_blocks.9.ff.net.0.proj.weight", (10240, 1280)),
        (f"{UNET_PREFIX}middle_block.1.transformer_blocks.9.attn1.to_q.weight", (1280, 1280)),
        (f"{UNET_PREFIX}output_blocks.0.0.skip_connection.weight", (1280, 2560, 1, 1)),
        (f"{UNET_PREFIX}output_blocks.2.2.conv.weight", (1280, 1280, 3, 3)),
        (f"{UNET_PREFIX}output_blocks.5.1.transformer_blocks.1.norm3.weight", (640,)),
        (f"{UNET_PREFIX}output_blocks.8.0.skip_connection.weight", (320, 640, 1, 1)),
        (f"{SDXL_CLIP_G_PREFIX}transformer.resblocks.31.attn.in_proj_weight", (3840, 1280)),
        (f"{SDXL_CLIP_G_PREFIX}transformer.resblocks.0.mlp.c_fc.weight", (5120, 1280)),
        (f"{SDXL_CLIP_G_PREFIX}positional_embedding", (77, 1280)),
        (f"{SDXL_CLIP_G_PREFIX}text_projection", (1280, 1280)),
        (f"{SDXL_CLIP_L_PREFIX}encoder.layers.11.self_attn.q_proj.weight", (768, 768)),
    ],
)
def test_sdxl_layout_shapes(name: str, shape: tuple[int, ...]) -> None:
    assert {spec.name: spec.shape for spec in checkpoint_layout(SDXL_FULL)}[name] == shape


def test_sdxl_has_no_attention_at_the_first_level_and_no_third_downsample() -> None:
    names = {spec.name for spec in checkpoint_layout(SDXL_FULL)}
    assert f"{UNET_PREFIX}input_blocks.1.1.norm.weight" not in names
    assert f"{UNET_PREFIX}output_blocks.8.1.norm.weight" not in names
    assert f"{UNET_PREFIX}input_blocks.9.0.op.weight" not in names
    assert f"{UNET_PREFIX}input_blocks.7.1.transformer_blocks.10.norm1.weight" not in names


def test_sd15_parameters_are_unchanged_by_the_sdxl_fields() -> None:
    # Files written before SDXL existed must still count as up to date (their metadata holds these params).
    assert "level_depths" not in FULL.to_dict()["unet"]
    assert "adm_in_channels" not in FULL.to_dict()["unet"]
    assert tuple(SDXL_FULL.to_dict()["unet"]["level_depths"]) == (0, 2, 10)


def test_level_depths_must_match_the_levels() -> None:
    with pytest.raises(ValueError, match="level_depths"):
        UNetArch(level_depths=(1, 2))


@pytest.fixture
def tiny_sdxl(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the SDXL architecture tiny, so that writing a checkpoint takes milliseconds."""
    monkeypatch.setattr(models, "SDXL_FULL", TINY_SDXL)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier dev")
    commands.register_dev_commands(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.mark.usefixtures("tiny_sdxl")
def test_cli_writes_an_sdxl_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.safetensors"
    args = _parser().parse_args(["make-checkpoint", "--family", "sdxl", "--full", "--out", str(out), "--seed", "5"])
    assert args.func(args) == 0
    loaded = load_file(str(out))
    assert {name: value.shape for name, value in loaded.items()} == {
        spec.name: spec.shape for spec in checkpoint_layout(TINY_SDXL)
    }
    assert all(np.isfinite(value).all() for value in loaded.values())
    assert family_of(list(loaded)) == "sdxl"
    metadata = read_metadata(out)
    assert metadata[PARAMS_KEY] == encode_params(models.sdxl_checkpoint_params(5))
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    assert str(out) in capsys.readouterr().out


def test_cli_refuses_a_slim_sdxl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["make-checkpoint", "--family", "sdxl", "--out", str(tmp_path / "x.safetensors")])
    assert args.func(args) == 2
    assert "--full" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    assert commands.default_checkpoint_path("full", "sdxl") == Path("models/checkpoints/sdxl-full-random.safetensors")
