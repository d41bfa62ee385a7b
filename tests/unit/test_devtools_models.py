"""Random-weight SD1.5 test models: layout, LoRA keys, determinism, metadata, atomic writes, CLI."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from orchestrator.devtools import commands, models
from orchestrator.devtools.architecture import FULL, SLIM, ClipArch, SD15Arch, UNetArch, VaeArch, arch_for
from orchestrator.devtools.layout import (
    CLIP_PREFIX,
    RESIDUAL_GAIN,
    UNET_PREFIX,
    VAE_PREFIX,
    Init,
    TensorSpec,
    checkpoint_layout,
)
from orchestrator.devtools.lora_layout import LoraTarget, lora_targets
from orchestrator.devtools.safetensors_io import (
    PARAMS_KEY,
    TensorEntry,
    encode_params,
    read_metadata,
    write_safetensors,
)

TINY = SD15Arch(
    unet=UNetArch(
        model_channels=32,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_levels=(True, False),
        context_dim=16,
        num_heads=2,
    ),
    clip=ClipArch(vocab_size=50, max_positions=8, hidden=16, intermediate=32, layers=2),
    vae=VaeArch(encoder_channels=32, decoder_channels=32, channel_mult=(1, 2), num_res_blocks=1),
)


def _shapes(arch: SD15Arch) -> dict[str, tuple[int, ...]]:
    return {spec.name: spec.shape for spec in checkpoint_layout(arch)}


def _part(specs: list[TensorSpec], prefix: str) -> list[TensorSpec]:
    return [spec for spec in specs if spec.name.startswith(prefix)]


# --- layout ---------------------------------------------------------------------------------------------


def test_full_layout_has_sd15_key_and_parameter_counts() -> None:
    specs = checkpoint_layout(FULL)
    counts = {prefix: len(_part(specs, prefix)) for prefix in (UNET_PREFIX, CLIP_PREFIX, VAE_PREFIX)}
    params = {prefix: sum(s.numel for s in _part(specs, prefix)) for prefix in counts}
    assert counts == {UNET_PREFIX: 686, CLIP_PREFIX: 196, VAE_PREFIX: 248}
    assert params == {UNET_PREFIX: 859_520_964, CLIP_PREFIX: 123_060_480, VAE_PREFIX: 83_653_863}
    assert len(specs) == len({spec.name for spec in specs})


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        (f"{UNET_PREFIX}time_embed.0.weight", (1280, 320)),
        (f"{UNET_PREFIX}input_blocks.0.0.weight", (320, 4, 3, 3)),
        (f"{UNET_PREFIX}input_blocks.3.0.op.weight", (320, 320, 3, 3)),
        (f"{UNET_PREFIX}input_blocks.4.0.skip_connection.weight", (640, 320, 1, 1)),
        (f"{UNET_PREFIX}input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", (640, 768)),
        (f"{UNET_PREFIX}input_blocks.11.0.out_layers.3.weight", (1280, 1280, 3, 3)),
        (f"{UNET_PREFIX}middle_block.1.proj_in.weight", (1280, 1280, 1, 1)),
        (f"{UNET_PREFIX}middle_block.1.transformer_blocks.0.ff.net.0.proj.weight", (10240, 1280)),
        (f"{UNET_PREFIX}output_blocks.0.0.in_layers.2.weight", (1280, 2560, 3, 3)),
        (f"{UNET_PREFIX}output_blocks.2.1.conv.weight", (1280, 1280, 3, 3)),
        (f"{UNET_PREFIX}output_blocks.5.2.conv.weight", (1280, 1280, 3, 3)),
        (f"{UNET_PREFIX}output_blocks.8.2.conv.weight", (640, 640, 3, 3)),
        (f"{UNET_PREFIX}output_blocks.11.0.skip_connection.weight", (320, 640, 1, 1)),
        (f"{UNET_PREFIX}out.2.weight", (4, 320, 3, 3)),
        (f"{CLIP_PREFIX}embeddings.token_embedding.weight", (49408, 768)),
        (f"{CLIP_PREFIX}encoder.layers.11.mlp.fc1.weight", (3072, 768)),
        (f"{VAE_PREFIX}encoder.down.1.block.0.nin_shortcut.weight", (256, 128, 1, 1)),
        (f"{VAE_PREFIX}encoder.conv_out.weight", (8, 512, 3, 3)),
        (f"{VAE_PREFIX}decoder.up.3.upsample.conv.weight", (512, 512, 3, 3)),
        (f"{VAE_PREFIX}decoder.up.0.block.0.nin_shortcut.weight", (128, 256, 1, 1)),
        (f"{VAE_PREFIX}decoder.mid.attn_1.q.weight", (512, 512, 1, 1)),
        (f"{VAE_PREFIX}quant_conv.weight", (8, 8, 1, 1)),
    ],
)
def test_full_layout_shapes(name: str, shape: tuple[int, ...]) -> None:
    assert _shapes(FULL)[name] == shape


def test_full_layout_has_no_resampler_where_sd15_has_none() -> None:
    names = _shapes(FULL)
    assert f"{UNET_PREFIX}input_blocks.12.0.op.weight" not in names  # last encoder level does not downsample
    assert f"{UNET_PREFIX}output_blocks.11.2.conv.weight" not in names  # nor does the last decoder level
    assert f"{VAE_PREFIX}decoder.up.0.upsample.conv.weight" not in names
    assert f"{UNET_PREFIX}input_blocks.10.1.norm.weight" not in names  # the deepest level has no attention


def test_slim_keeps_what_comfyui_uses_to_detect_sd15() -> None:
    slim, full = checkpoint_layout(SLIM), checkpoint_layout(FULL)
    shapes = {spec.name: spec.shape for spec in slim}
    assert shapes[f"{UNET_PREFIX}input_blocks.0.0.weight"][0] == 320
    to_k = [name for name in shapes if name.endswith("attn2.to_k.weight")]
    assert to_k
    assert all(shapes[name][1] == 768 for name in to_k)
    assert all(len(shapes[name]) == 4 for name in shapes if name.endswith("proj_in.weight"))
    assert _part(slim, CLIP_PREFIX) == _part(full, CLIP_PREFIX)
    assert _part(slim, VAE_PREFIX + "encoder.") == _part(full, VAE_PREFIX + "encoder.")
    assert shapes[f"{VAE_PREFIX}decoder.conv_in.weight"] == (128, 4, 3, 3)


def test_slim_is_much_smaller_than_full() -> None:
    slim = sum(spec.numel for spec in checkpoint_layout(SLIM))
    full = sum(spec.numel for spec in checkpoint_layout(FULL))
    assert slim < full / 5


def test_init_scales() -> None:
    specs = {spec.name: spec for spec in checkpoint_layout(FULL)}
    conv = specs[f"{UNET_PREFIX}input_blocks.0.0.weight"]
    assert conv.std == pytest.approx(1 / math.sqrt(4 * 9))
    out = specs[f"{UNET_PREFIX}middle_block.1.transformer_blocks.0.attn1.to_out.0.weight"]
    assert out.std == pytest.approx(RESIDUAL_GAIN / math.sqrt(1280))
    assert specs[f"{UNET_PREFIX}out.0.weight"].init is Init.ONES
    assert specs[f"{UNET_PREFIX}out.2.bias"].init is Init.ZEROS


def test_invalid_architectures_are_refused() -> None:
    with pytest.raises(ValueError, match="attention_levels"):
        UNetArch(channel_mult=(1, 2), attention_levels=(True,))
    with pytest.raises(ValueError, match="divisible by 32"):
        UNetArch(model_channels=48, channel_mult=(1,), attention_levels=(True,))
    with pytest.raises(ValueError, match="unknown variant"):
        arch_for("tiny")  # type: ignore[arg-type]


# --- LoRA keys ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [FULL, SLIM, TINY], ids=["full", "slim", "tiny"])
def test_lora_targets_are_weights_of_the_checkpoint(arch: SD15Arch) -> None:
    shapes = _shapes(arch)
    targets = lora_targets(arch)
    assert len({t.kohya for t in targets}) == len(targets)
    for target in targets:
        tail = (1, 1) if target.conv else ()
        assert shapes[target.model_weight] == (target.fan_out, target.fan_in, *tail)


def test_full_lora_matches_kohya_sd15_naming_and_count() -> None:
    targets = {t.kohya: t for t in lora_targets(FULL)}
    assert len(targets) == 264  # 16 transformers x 12 modules + 12 CLIP layers x 6 modules
    proj_in = targets["lora_unet_down_blocks_0_attentions_0_proj_in"]
    assert (proj_in.model_weight, proj_in.conv) == (f"{UNET_PREFIX}input_blocks.1.1.proj_in.weight", True)
    up = targets["lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_attn2_to_k"]
    assert up.model_weight == f"{UNET_PREFIX}output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight"
    assert (up.fan_in, up.fan_out) == (768, 320)
    mid = targets["lora_unet_mid_block_attentions_0_transformer_blocks_0_ff_net_0_proj"]
    assert (mid.fan_in, mid.fan_out) == (1280, 10240)
    fc1 = targets["lora_te_text_model_encoder_layers_0_mlp_fc1"]
    assert fc1.down_shape(4) == (4, 768)
    assert fc1.up_shape(4) == (3072, 4)
    assert not any(name.startswith("lora_unet_up_blocks_0_") for name in targets)  # no attention there


def test_lora_tensors_have_kohya_shapes_and_alpha() -> None:
    tensors = models.build_lora_tensors(TINY, rank=3, seed=1)
    targets = lora_targets(TINY)
    assert len(tensors) == 3 * len(targets)
    for target in targets:
        assert tensors[f"{target.kohya}.lora_down.weight"].shape == target.down_shape(3)
        assert tensors[f"{target.kohya}.lora_up.weight"].shape == target.up_shape(3)
        alpha = tensors[f"{target.kohya}.alpha"]
        assert alpha.shape == ()
        assert float(alpha) == 3.0
    assert all(np.isfinite(t).all() and t.dtype == np.float16 for t in tensors.values())
    with pytest.raises(ValueError, match="rank"):
        models.build_lora_tensors(TINY, rank=0, seed=1)


# --- values ---------------------------------------------------------------------------------------------


def test_checkpoint_values_are_deterministic_finite_and_match_layout() -> None:
    first = models.build_checkpoint_tensors(TINY, seed=7)
    again = models.build_checkpoint_tensors(TINY, seed=7)
    other = models.build_checkpoint_tensors(TINY, seed=8)
    layout = checkpoint_layout(TINY)
    assert list(first) == [spec.name for spec in layout]
    for spec in layout:
        value = first[spec.name]
        assert value.shape == spec.shape
        assert value.dtype == np.float16
        assert np.isfinite(value).all()
        np.testing.assert_array_equal(value, again[spec.name])
    weight = f"{UNET_PREFIX}input_blocks.0.0.weight"
    assert not np.array_equal(first[weight], other[weight])


def test_weight_values_follow_their_std() -> None:
    spec = TensorSpec("x.weight", (256, 512), Init.WEIGHT)
    values = models.tensor_values(spec, seed=0, dtype=np.dtype("float32"))
    assert values.std() == pytest.approx(spec.std, rel=0.02)
    assert abs(values.mean()) < spec.std / 20
    ones = models.tensor_values(TensorSpec("n.weight", (8,), Init.ONES), seed=0, dtype=np.dtype("float16"))
    np.testing.assert_array_equal(ones, np.ones(8, dtype=np.float16))


# --- files ----------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_variants(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make both variants the tiny architecture, so that writing a checkpoint takes milliseconds."""
    monkeypatch.setattr(models, "arch_for", lambda variant: TINY)


@pytest.mark.usefixtures("tiny_variants")
def test_checkpoint_file_round_trips_with_parameters_in_metadata(tmp_path: Path) -> None:
    path = models.write_sd15_checkpoint(tmp_path / "ckpt" / "m.safetensors", variant="slim", seed=3)
    assert path == tmp_path / "ckpt" / "m.safetensors"
    loaded = load_file(str(path))
    expected = models.build_checkpoint_tensors(TINY, seed=3)
    assert sorted(loaded) == sorted(expected)
    np.testing.assert_array_equal(loaded[f"{CLIP_PREFIX}final_layer_norm.weight"], np.ones(16, np.float16))
    metadata = read_metadata(path)
    assert metadata[PARAMS_KEY] == encode_params(models.checkpoint_params("slim", 3))
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1"
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.usefixtures("tiny_variants")
def test_existing_file_with_same_parameters_is_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "m.safetensors"
    models.write_sd15_checkpoint(target, variant="slim", seed=1)
    before = target.stat()
    models.write_sd15_checkpoint(target, variant="slim", seed=1)
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    models.write_sd15_checkpoint(target, variant="slim", seed=2)
    assert target.stat().st_ino != before.st_ino
    assert read_metadata(target)[PARAMS_KEY] == encode_params(models.checkpoint_params("slim", 2))


def test_foreign_file_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "l.safetensors"
    target.write_bytes(b"not a safetensors file")
    models.write_kohya_lora(target, variant="slim", rank=2)
    assert read_metadata(target)[PARAMS_KEY] == encode_params(models.lora_params("slim", 2, 0))


def test_failed_write_leaves_previous_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "l.safetensors"
    models.write_kohya_lora(target, variant="slim", rank=2)
    previous = target.read_bytes()

    def boom(target: LoraTarget, rank: int, seed: int) -> np.ndarray:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(models, "_lora_up", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        models.write_kohya_lora(target, variant="slim", rank=3)
    assert target.read_bytes() == previous
    assert list(tmp_path.iterdir()) == [target]


def test_slim_lora_file_has_kohya_metadata_and_all_targets(tmp_path: Path) -> None:
    path = models.write_kohya_lora(tmp_path / "l.safetensors", variant="slim", rank=4, seed=5)
    loaded = load_file(str(path))
    stems = {name.rsplit(".", 2)[0] if name.endswith(".weight") else name.rsplit(".", 1)[0] for name in loaded}
    assert stems == {t.kohya for t in lora_targets(SLIM)}
    metadata = read_metadata(path)
    assert metadata["ss_network_dim"] == "4"
    assert metadata["ss_network_alpha"] == "4.0"
    assert metadata["ss_network_module"] == "networks.lora"


@pytest.mark.slow
def test_real_slim_checkpoint_file(tmp_path: Path) -> None:
    path = models.write_sd15_checkpoint(tmp_path / "slim.safetensors", variant="slim")
    loaded = load_file(str(path))
    assert {name: value.shape for name, value in loaded.items()} == _shapes(SLIM)
    assert all(np.isfinite(value).all() for value in loaded.values())
    assert path.stat().st_size < 400_000_000


# --- CLI ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="atelier dev")
    commands.register_dev_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_parses_defaults() -> None:
    args = _parser().parse_args(["make-checkpoint"])
    assert (args.full, args.out, args.seed, args.func) == (False, None, 0, commands.make_checkpoint_command)
    args = _parser().parse_args(["make-lora", "--variant", "full", "--rank", "8"])
    assert (args.variant, args.rank, args.func) == ("full", 8, commands.make_lora_command)
    assert commands.default_checkpoint_path("full") == Path("models/checkpoints/sd15-full-random.safetensors")
    assert commands.default_lora_path("slim", 4) == Path("models/loras/sd15-slim-random-r4.safetensors")


@pytest.mark.parametrize("argv", [["make-lora", "--rank", "0"], ["make-checkpoint", "--seed", "-1"]])
def test_cli_refuses_bad_numbers(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)


@pytest.mark.usefixtures("tiny_variants")
def test_cli_commands_write_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, lora = tmp_path / "c.safetensors", tmp_path / "l.safetensors"
    args = _parser().parse_args(["make-checkpoint", "--full", "--out", str(ckpt), "--seed", "2"])
    assert args.func(args) == 0
    assert read_metadata(ckpt)[PARAMS_KEY] == encode_params(models.checkpoint_params("full", 2))
    args = _parser().parse_args(["make-lora", "--rank", "2", "--out", str(lora)])
    assert args.func(args) == 0
    assert read_metadata(lora)[PARAMS_KEY] == encode_params(models.lora_params("slim", 2, 0))
    out = capsys.readouterr().out
    assert str(ckpt) in out
    assert str(lora) in out


def test_cli_reports_unwritable_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = _parser().parse_args(["make-lora", "--out", str(blocker / "l.safetensors")])
    assert args.func(args) == 1
    assert "error:" in capsys.readouterr().err


# --- safetensors container ------------------------------------------------------------------------------


def test_files_are_byte_identical_across_runs(tmp_path: Path) -> None:
    first = models.write_kohya_lora(tmp_path / "a.safetensors", variant="slim", rank=2, seed=4)
    second = models.write_kohya_lora(tmp_path / "b.safetensors", variant="slim", rank=2, seed=4)
    assert first.read_bytes() == second.read_bytes()
    header_len = int.from_bytes(first.read_bytes()[:8], "little")
    assert (8 + header_len) % 8 == 0  # tensor data starts 8-byte aligned


def test_container_is_read_back_by_safetensors(tmp_path: Path) -> None:
    f16, f32 = np.dtype("float16"), np.dtype("float32")
    entries = [
        TensorEntry("b", (2, 3), f32, lambda: np.arange(6, dtype=np.float32).reshape(2, 3)),
        TensorEntry("a", (), f16, lambda: np.asarray(1.5, dtype=np.float16)),
        TensorEntry("c", (0,), f16, lambda: np.zeros(0, dtype=np.float16)),
    ]
    path = tmp_path / "t.safetensors"
    write_safetensors(path, entries, {"k": "v"})
    loaded = load_file(str(path))
    np.testing.assert_array_equal(loaded["b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert loaded["a"].shape == ()
    assert float(loaded["a"]) == 1.5
    assert loaded["c"].shape == (0,)
    assert read_metadata(path) == {"k": "v"}


def test_container_refuses_inconsistent_entries(tmp_path: Path) -> None:
    f32 = np.dtype("float32")
    wrong_shape = [TensorEntry("x", (2,), f32, lambda: np.zeros(3, dtype=np.float32))]
    with pytest.raises(ValueError, match="declared"):
        write_safetensors(tmp_path / "x.safetensors", wrong_shape, {})
    twice = [TensorEntry("x", (1,), f32, lambda: np.zeros(1, dtype=np.float32))] * 2
    with pytest.raises(ValueError, match="duplicate"):
        write_safetensors(tmp_path / "y.safetensors", twice, {})
