"""sd-scripts configuration: presets, overrides, validation, TOML rendering, argv."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from trainer.config import (
    ConfigError,
    LaunchSpec,
    RunLayout,
    SamplePrompt,
    SdScriptsInstall,
    TrainingRequest,
    build_argv,
    preflight,
    resolve_request,
    write_run_files,
)
from trainer.dataset import DatasetManifest
from trainer.presets import PRESETS, ModelFamily, Optimizer, Preset

MODEL = Path("/models/base.safetensors")
FLUX_PARTS = {"clip_l": "/m/clip_l.safetensors", "t5xxl": "/m/t5xxl.safetensors", "ae": "/m/ae.safetensors"}


def request(**values: Any) -> TrainingRequest:
    values.setdefault("family", "sd15")
    values.setdefault("base_model", str(MODEL))
    return TrainingRequest.model_validate(values)


def manifest(bucketed: bool = False) -> DatasetManifest:
    return DatasetManifest(
        image_dir="10_zxq person",
        trigger="zxq",
        class_word="person",
        kind="person",
        repeats=10,
        resolution=512,
        crop_mode="bucket" if bucketed else "face",
    )


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(part) for part in error["loc"]) for error in exc.errors()}


@pytest.mark.parametrize(
    ("family", "script", "module"),
    [
        ("sd15", "train_network.py", "networks.lora"),
        ("sdxl", "sdxl_train_network.py", "networks.lora"),
        ("flux", "flux_train_network.py", "networks.lora_flux"),
    ],
)
def test_families_pick_script_and_network_module(family: str, script: str, module: str) -> None:
    extra = FLUX_PARTS if family == "flux" else {}
    plan = resolve_request(request(family=family, **extra))
    assert plan.spec.script == script
    assert plan.spec.network_module == module


def test_preset_values_and_explicit_overrides() -> None:
    preset = PRESETS[ModelFamily.SDXL][Preset.QUALITY]
    plan = resolve_request(request(family="sdxl", preset="quality", network_dim=64, learning_rate=2e-4))
    assert plan.network_dim == 64
    assert plan.learning_rate == 2e-4
    assert (plan.steps, plan.network_alpha, plan.resolution, plan.batch_size) == (
        preset.steps,
        preset.network_alpha,
        preset.resolution,
        preset.batch_size,
    )
    assert plan.optimizer is preset.optimizer


def test_cpu_swaps_the_preset_8bit_optimizer_but_refuses_an_explicit_one() -> None:
    assert resolve_request(request(cpu=True)).optimizer is Optimizer.ADAMW
    with pytest.raises(ValidationError) as caught:
        request(cpu=True, optimizer="AdamW8bit")
    assert error_fields(caught.value) == {"optimizer"}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"network_dim": 0}, "network_dim"),
        ({"network_dim": 1024}, "network_dim"),
        ({"resolution": 500}, "resolution"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"steps": 0}, "steps"),
        ({"batch_size": 100}, "batch_size"),
        ({"optimizer": "SGD"}, "optimizer"),
        ({"base_model": "relative/model.safetensors"}, "base_model"),
        ({"clip_l": "/m/clip_l.safetensors"}, "clip_l"),
        ({"sample_every_n_steps": 10}, "sample_every_n_steps"),
        ({"sample_prompts": [{"prompt": "a --n b"}]}, "sample_prompts.0.prompt"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_validation_errors_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request(**values)
    assert error_fields(caught.value) == {field}


def test_flux_needs_its_text_encoders_and_ae() -> None:
    with pytest.raises(ValidationError) as caught:
        request(family="flux")
    assert error_fields(caught.value) == {"clip_l", "t5xxl", "ae"}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"learning_rate": 0.5}, "learning_rate"),
        ({"steps": 10, "save_every_n_steps": 20}, "save_every_n_steps"),
    ],
)
def test_resolve_errors_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_request(request(**values))
    assert caught.value.field == field


def test_prodigy_may_use_a_large_learning_rate() -> None:
    assert resolve_request(request(optimizer="Prodigy", learning_rate=1.0)).learning_rate == 1.0


def install(tmp_path: Path) -> SdScriptsInstall:
    return SdScriptsInstall(
        python=tmp_path / "svenv/bin/python",
        scripts_dir=tmp_path / "sd-scripts",
        tokenizer_cache_dir=tmp_path / "tokenizers",
        launcher=tmp_path / "launcher.py",
    )


def write(
    tmp_path: Path, req: TrainingRequest, bucketed: bool = False
) -> tuple[LaunchSpec, dict[str, Any], dict[str, Any]]:
    layout = RunLayout(tmp_path / "run", output_name="zxq_v1")
    spec = write_run_files(resolve_request(req), manifest(bucketed), tmp_path / "data", install(tmp_path), layout)
    dataset = tomllib.loads(layout.dataset_config.read_text())
    config = tomllib.loads(layout.config_file.read_text())
    return spec, dataset, config


def flat(config: dict[str, Any]) -> dict[str, Any]:
    """Flatten sections the way sd-scripts' read_config_from_file does."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(value)
        else:
            out[key] = value
    return out


def test_dataset_toml(tmp_path: Path) -> None:
    _, dataset, _ = write(tmp_path, request(batch_size=3))
    (only,) = dataset["datasets"]
    assert only["resolution"] == 512
    assert only["batch_size"] == 3
    assert only["enable_bucket"] is False
    (subset,) = only["subsets"]
    assert subset == {
        "image_dir": str(tmp_path / "data" / "10_zxq person"),
        "class_tokens": "zxq person",
        "num_repeats": 10,
        "caption_extension": ".txt",
    }
    _, bucketed, _ = write(tmp_path / "b", request(), bucketed=True)
    assert bucketed["datasets"][0]["enable_bucket"] is True


def test_config_toml_for_cpu(tmp_path: Path) -> None:
    prompts = [{"prompt": "zxq person, smiling", "negative_prompt": "blurry", "width": 512, "seed": 3}]
    spec, _, config = write(tmp_path, request(cpu=True, steps=6, save_every_n_steps=3, sample_prompts=prompts))
    args = flat(config)
    assert args["pretrained_model_name_or_path"] == str(MODEL)
    assert args["tokenizer_cache_dir"] == str(tmp_path / "tokenizers")
    assert args["network_module"] == "networks.lora"
    assert args["max_train_steps"] == 6
    assert args["mixed_precision"] == "no"
    assert args["max_data_loader_n_workers"] == 0
    assert args["cache_latents"] is True
    assert args["optimizer_type"] == "AdamW"
    assert args["save_state"] is True
    assert args["save_every_n_steps"] == 3
    assert args["save_model_as"] == "safetensors"
    assert args["output_dir"] == str(spec.layout.output_dir)
    assert args["output_name"] == "zxq_v1"
    assert args["sample_every_n_steps"] == 3
    assert "save_precision" not in args
    assert "resume" not in args
    prompt_file = Path(args["sample_prompts"]).read_text()
    assert prompt_file == "zxq person, smiling --n blurry --w 512 --s 20 --l 7 --d 3\n"


def test_sdxl_on_cpu_trains_a_bf16_unet(tmp_path: Path) -> None:
    # fp32 did not fit comfortably in 24 GB shared: 17.7 GB peak against 11.9 GB in bf16 (measured).
    _, _, config = write(tmp_path, request(family="sdxl", cpu=True, steps=2, save_every_n_steps=2))
    args = flat(config)
    assert (args["mixed_precision"], args["full_bf16"]) == ("bf16", True)
    assert args["cache_text_encoder_outputs"] is True
    assert args["network_train_unet_only"] is True
    assert "gradient_checkpointing" not in args
    _, _, sd15 = write(tmp_path / "sd15", request(cpu=True))
    assert flat(sd15)["mixed_precision"] == "no"
    assert "full_bf16" not in flat(sd15)


def test_config_toml_for_flux_on_gpu(tmp_path: Path) -> None:
    _, _, config = write(tmp_path, request(family="flux", **FLUX_PARTS))
    args = flat(config)
    assert args["network_module"] == "networks.lora_flux"
    assert {args["clip_l"], args["t5xxl"], args["ae"]} == set(FLUX_PARTS.values())
    assert args["mixed_precision"] == "bf16"
    assert args["fp8_base"] is True
    assert args["model_prediction_type"] == "raw"
    assert args["max_data_loader_n_workers"] == 2


def test_resume_goes_into_the_config(tmp_path: Path) -> None:
    state = "/runs/r1/output/zxq_v1-step00000300-state"
    _, _, config = write(tmp_path, request(resume=state))
    args = flat(config)
    assert args["resume"] == state
    assert args["skip_until_initial_step"] is True


def test_argv(tmp_path: Path) -> None:
    spec, _, _ = write(tmp_path, request(family="sdxl"))
    argv = build_argv(spec.with_extra_args("--resume", "/s"), 7)
    run = tmp_path / "run"
    assert argv == [
        str(tmp_path / "svenv/bin/python"),
        str(tmp_path / "launcher.py"),
        "--events-fd",
        "7",
        "--sd-scripts-dir",
        str(tmp_path / "sd-scripts"),
        "--",
        "sdxl_train_network.py",
        "--dataset_config",
        str(run / "dataset.toml"),
        "--config_file",
        str(run / "config.toml"),
        "--resume",
        "/s",
    ]
    assert spec.cmdline_marker in argv


def test_preflight_names_missing_files(tmp_path: Path) -> None:
    plan = resolve_request(request())
    errors = preflight(plan, install(tmp_path))
    assert {e.field for e in errors} == {
        "base_model",
        "sd_scripts.python",
        "sd_scripts.script",
        "sd_scripts.launcher",
        "sd_scripts.tokenizer_cache_dir",
    }


def test_sample_prompt_line_defaults() -> None:
    assert SamplePrompt(prompt="a cat").to_line() == "a cat --s 20 --l 7"
