"""sd-scripts configuration: validated training requests, presets applied, TOML files and the argv.

The service never builds a shell string: :func:`write_run_files` renders ``dataset.toml`` (sd-scripts'
``--dataset_config``) and ``config.toml`` (``--config_file``) with ``tomli_w`` and returns a
:class:`LaunchSpec`; :func:`build_argv` turns that into the argument list once the supervisor knows the
file descriptor of its progress pipe. Paths in the files are absolute: the launcher changes into the
sd-scripts checkout before running the script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from trainer.dataset.manifest import DatasetManifest
from trainer.presets import FAMILIES, PRESETS, FamilySpec, ModelFamily, Optimizer, Preset

MAX_ADAPTIVE_FREE_LR = 0.01
LAUNCHER_PATH = Path(__file__).with_name("launcher.py")


class ConfigError(ValueError):
    """A training parameter that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SamplePrompt(BaseModel):
    """One prompt sd-scripts renders while training (a line of its sample-prompts file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1, max_length=1000)
    negative_prompt: str | None = Field(default=None, max_length=1000)
    width: int | None = Field(default=None, ge=64, le=2048, multiple_of=8)
    height: int | None = Field(default=None, ge=64, le=2048, multiple_of=8)
    steps: int = Field(default=20, ge=1, le=150)
    scale: float = Field(default=7.0, ge=0.0, le=30.0)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _one_line_without_options(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "\n" in value or "\r" in value:
            raise ValueError("must be a single line")
        if " --" in f" {value}":
            raise ValueError("must not contain '--' (sd-scripts reads it as an option)")
        return value.strip()

    def to_line(self) -> str:
        """The sd-scripts prompt-file line: ``prompt --n neg --w W --h H --s steps --l scale --d seed``."""
        parts = [self.prompt]
        if self.negative_prompt:
            parts.append(f"--n {self.negative_prompt}")
        if self.width is not None:
            parts.append(f"--w {self.width}")
        if self.height is not None:
            parts.append(f"--h {self.height}")
        parts.append(f"--s {self.steps}")
        parts.append(f"--l {self.scale:g}")
        if self.seed is not None:
            parts.append(f"--d {self.seed}")
        return " ".join(parts)


class TrainingRequest(BaseModel):
    """What to train. ``None`` fields take the preset's value; the paths are resolved by the caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: ModelFamily
    preset: Preset = Preset.BALANCED
    cpu: bool = False
    base_model: Path
    clip_l: Path | None = Field(default=None, validate_default=True)
    t5xxl: Path | None = Field(default=None, validate_default=True)
    ae: Path | None = Field(default=None, validate_default=True)
    steps: int | None = Field(default=None, ge=1, le=100_000)
    network_dim: int | None = Field(default=None, ge=1, le=256)
    network_alpha: float | None = Field(default=None, gt=0, le=256)
    learning_rate: float | None = Field(default=None, gt=0, le=1.0)
    optimizer: Optimizer | None = None
    resolution: int | None = Field(default=None, ge=64, le=2048, multiple_of=64)
    batch_size: int | None = Field(default=None, ge=1, le=32)
    save_every_n_steps: int | None = Field(default=None, ge=1)
    sample_prompts: list[SamplePrompt] = Field(default_factory=list, max_length=8)
    sample_every_n_steps: int | None = Field(default=None, ge=1, validate_default=True)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    resume: Path | None = None

    @field_validator("clip_l", "t5xxl", "ae")
    @classmethod
    def _flux_parts(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        family = info.data.get("family")
        if family is None:
            return value
        if FAMILIES[family].needs_flux_parts and value is None:
            raise ValueError(f"required for {family.value} (a path to the {info.field_name} weights)")
        if not FAMILIES[family].needs_flux_parts and value is not None:
            raise ValueError(f"only used by flux, not by {family.value}")
        return value

    @field_validator("sample_every_n_steps")
    @classmethod
    def _samples_need_prompts(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("sample_prompts"):
            raise ValueError("needs sample_prompts")
        return value

    @field_validator("base_model", "clip_l", "t5xxl", "ae", "resume")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path")
        return value

    @field_validator("optimizer")
    @classmethod
    def _optimizer_fits(cls, value: Optimizer | None, info: ValidationInfo) -> Optimizer | None:
        if value is not None and value.needs_gpu and info.data.get("cpu"):
            raise ValueError(f"{value.value} needs a GPU; use AdamW on CPU")
        return value


@dataclass(frozen=True)
class TrainingPlan:
    """A request with the preset applied: every value sd-scripts needs, final."""

    request: TrainingRequest
    spec: FamilySpec
    steps: int
    network_dim: int
    network_alpha: float
    learning_rate: float
    optimizer: Optimizer
    resolution: int
    batch_size: int
    save_every_n_steps: int
    sample_every_n_steps: int | None


def resolve_request(request: TrainingRequest) -> TrainingPlan:
    """Apply the preset (explicit request values win) and check the values that depend on each other."""
    preset = PRESETS[request.family][request.preset]
    optimizer = request.optimizer or preset.optimizer
    if request.cpu and optimizer.needs_gpu and request.optimizer is None:
        optimizer = Optimizer.ADAMW
    learning_rate = request.learning_rate or preset.learning_rate
    if learning_rate > MAX_ADAPTIVE_FREE_LR and not optimizer.adaptive:
        raise ConfigError("learning_rate", f"{learning_rate:g} is above {MAX_ADAPTIVE_FREE_LR:g}; only Prodigy")
    steps = request.steps or preset.steps
    save_every = request.save_every_n_steps or max(1, math.ceil(steps / 5))
    if save_every > steps:
        raise ConfigError("save_every_n_steps", f"{save_every} is more than the {steps} training steps")
    sample_every = request.sample_every_n_steps
    if request.sample_prompts and sample_every is None:
        sample_every = save_every
    return TrainingPlan(
        request=request,
        spec=FAMILIES[request.family],
        steps=steps,
        network_dim=request.network_dim or preset.network_dim,
        network_alpha=request.network_alpha or preset.network_alpha,
        learning_rate=learning_rate,
        optimizer=optimizer,
        resolution=request.resolution or preset.resolution,
        batch_size=request.batch_size or preset.batch_size,
        save_every_n_steps=save_every,
        sample_every_n_steps=sample_every,
    )


@dataclass(frozen=True)
class SdScriptsInstall:
    """Where sd-scripts lives: its Python, its checkout, our launcher, the offline tokenizer cache."""

    python: Path
    scripts_dir: Path
    tokenizer_cache_dir: Path | None = None
    launcher: Path = LAUNCHER_PATH


@dataclass(frozen=True)
class RunLayout:
    """The files of one training run inside its run directory."""

    run_dir: Path
    output_name: str = "lora"

    @property
    def output_dir(self) -> Path:
        """Where sd-scripts writes LoRA files, states and samples."""
        return self.run_dir / "output"

    @property
    def dataset_config(self) -> Path:
        """``--dataset_config`` TOML."""
        return self.run_dir / "dataset.toml"

    @property
    def config_file(self) -> Path:
        """``--config_file`` TOML."""
        return self.run_dir / "config.toml"

    @property
    def sample_prompts(self) -> Path:
        """sd-scripts' sample prompts file."""
        return self.run_dir / "sample_prompts.txt"

    @property
    def log_file(self) -> Path:
        """stdout and stderr of the training process."""
        return self.run_dir / "sd-scripts.log"

    @property
    def final_model(self) -> Path:
        """The LoRA file a successful run leaves."""
        return self.output_dir / f"{self.output_name}.safetensors"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start (or restart) a training process, except the pipe's fd."""

    install: SdScriptsInstall
    script: str
    layout: RunLayout
    extra_args: tuple[str, ...] = ()

    @property
    def cmdline_marker(self) -> str:
        """A string only this run's command line contains (to recognise it after a restart)."""
        return str(self.layout.config_file)

    def with_extra_args(self, *args: str) -> LaunchSpec:
        """A copy with more script arguments appended (they override ``config.toml``)."""
        return replace(self, extra_args=(*self.extra_args, *args))


def build_argv(spec: LaunchSpec, events_fd: int) -> list[str]:
    """The launcher's argument list: ``python launcher --events-fd N --sd-scripts-dir D -- script ...``."""
    return [
        str(spec.install.python),
        str(spec.install.launcher),
        "--events-fd",
        str(events_fd),
        "--sd-scripts-dir",
        str(spec.install.scripts_dir),
        "--",
        spec.script,
        "--dataset_config",
        str(spec.layout.dataset_config),
        "--config_file",
        str(spec.layout.config_file),
        *spec.extra_args,
    ]


def dataset_config(manifest: DatasetManifest, dataset_root: Path, batch_size: int) -> dict[str, Any]:
    """sd-scripts' dataset config for a prepared dataset (one DreamBooth subset, ``.txt`` captions)."""
    dataset: dict[str, Any] = {
        "resolution": manifest.resolution,
        "batch_size": batch_size,
        "enable_bucket": manifest.bucketed,
    }
    if manifest.bucketed:
        dataset.update(min_bucket_reso=256, max_bucket_reso=min(2 * manifest.resolution, 2048), bucket_no_upscale=True)
    subset = {
        "image_dir": str((dataset_root / manifest.image_dir).resolve()),
        "class_tokens": manifest.class_tokens,
        "num_repeats": manifest.repeats,
        "caption_extension": ".txt",
    }
    return {"general": {"shuffle_caption": False, "keep_tokens": 1}, "datasets": [{**dataset, "subsets": [subset]}]}


def training_config(plan: TrainingPlan, install: SdScriptsInstall, layout: RunLayout) -> dict[str, Any]:
    """sd-scripts' ``--config_file`` contents, in sections (sd-scripts flattens them)."""
    request, spec = plan.request, plan.spec
    model: dict[str, Any] = {"pretrained_model_name_or_path": str(request.base_model)}
    for name in ("clip_l", "t5xxl", "ae"):
        if getattr(request, name) is not None:
            model[name] = str(getattr(request, name))
    if install.tokenizer_cache_dir is not None:
        model["tokenizer_cache_dir"] = str(install.tokenizer_cache_dir)
    training: dict[str, Any] = {
        "max_train_steps": plan.steps,
        "train_batch_size": plan.batch_size,
        "seed": request.seed,
        "cache_latents": True,
        "mixed_precision": "no" if request.cpu else spec.gpu_mixed_precision,
        "max_data_loader_n_workers": 0 if request.cpu else 2,
        "console_log_simple": True,
        **spec.common_args,
        **(spec.cpu_args if request.cpu else spec.gpu_args),
    }
    if not request.cpu:
        training["persistent_data_loader_workers"] = True
    saving: dict[str, Any] = {
        "output_dir": str(layout.output_dir),
        "output_name": layout.output_name,
        "save_model_as": "safetensors",
        "save_every_n_steps": plan.save_every_n_steps,
        "save_state": True,
        "save_last_n_steps_state": plan.save_every_n_steps,
    }
    if not request.cpu:
        saving["save_precision"] = spec.save_precision
    if request.resume is not None:
        saving.update(resume=str(request.resume), skip_until_initial_step=True)
    config = {
        "model": model,
        "network": {
            "network_module": spec.network_module,
            "network_dim": plan.network_dim,
            "network_alpha": plan.network_alpha,
        },
        "optimizer": {"optimizer_type": plan.optimizer.value, "learning_rate": plan.learning_rate},
        "training": training,
        "saving": saving,
    }
    if request.sample_prompts:
        config["sampling"] = {
            "sample_prompts": str(layout.sample_prompts),
            "sample_every_n_steps": plan.sample_every_n_steps,
            "sample_sampler": "euler_a",
        }
    return config


def write_run_files(
    plan: TrainingPlan,
    manifest: DatasetManifest,
    dataset_root: Path,
    install: SdScriptsInstall,
    layout: RunLayout,
) -> LaunchSpec:
    """Write ``dataset.toml``, ``config.toml`` (and the sample prompts) into the run directory."""
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    layout.output_dir.mkdir(exist_ok=True)
    layout.dataset_config.write_text(tomli_w.dumps(dataset_config(manifest, dataset_root, plan.batch_size)))
    layout.config_file.write_text(tomli_w.dumps(training_config(plan, install, layout)))
    if plan.request.sample_prompts:
        lines = [prompt.to_line() for prompt in plan.request.sample_prompts]
        layout.sample_prompts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return LaunchSpec(install=install, script=plan.spec.script, layout=layout)


def preflight(plan: TrainingPlan, install: SdScriptsInstall) -> list[ConfigError]:
    """Files that must exist before a launch; each missing one is an error naming its field."""
    request = plan.request
    wanted: list[tuple[str, Path | None, bool]] = [
        ("base_model", request.base_model, False),
        ("clip_l", request.clip_l, False),
        ("t5xxl", request.t5xxl, False),
        ("ae", request.ae, False),
        ("resume", request.resume, True),
        ("sd_scripts.python", install.python, False),
        ("sd_scripts.script", install.scripts_dir / plan.spec.script, False),
        ("sd_scripts.launcher", install.launcher, False),
        ("sd_scripts.tokenizer_cache_dir", install.tokenizer_cache_dir, True),
    ]
    errors = []
    for field_name, path, is_dir in wanted:
        if path is None:
            continue
        present = path.is_dir() if is_dir else path.is_file()
        if not present:
            errors.append(ConfigError(field_name, f"{path} does not exist"))
    return errors
