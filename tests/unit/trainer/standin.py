"""Launch specs that run the stand-in trainer (tests/standin/fake_sd_trainer.py) instead of sd-scripts."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from trainer.config import LaunchSpec, RunLayout, SdScriptsInstall, TrainingRequest, resolve_request, write_run_files
from trainer.dataset import DatasetManifest
from trainer.supervisor import SupervisorOptions

STANDIN = Path(__file__).resolve().parents[2] / "standin" / "fake_sd_trainer.py"


def standin_spec(tmp_path: Path, *, images: int = 2, make_model: bool = True, **request: Any) -> LaunchSpec:
    """Dataset, base model file, sd-scripts folder and run files for one stand-in run under ``tmp_path``."""
    data = tmp_path / "data"
    folder = data / "2_zxq person"
    folder.mkdir(parents=True)
    for index in range(images):
        Image.new("RGB", (64, 64), (40 * index, 90, 200)).save(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text("zxq person\n")
    base = tmp_path / "models" / "base.safetensors"
    base.parent.mkdir()
    if make_model:
        base.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    scripts = tmp_path / "sd-scripts"
    scripts.mkdir()
    manifest = DatasetManifest(
        image_dir=folder.name,
        trigger="zxq",
        class_word="person",
        kind="person",
        repeats=2,
        resolution=64,
        crop_mode="face",
    )
    values: dict[str, Any] = {"family": "sd15", "base_model": str(base), "cpu": True, "resolution": 64, "steps": 6}
    values.update(request)
    plan = resolve_request(TrainingRequest.model_validate(values))
    install = SdScriptsInstall(python=Path(sys.executable), scripts_dir=scripts, launcher=STANDIN)
    return write_run_files(plan, manifest, data, install, RunLayout(tmp_path / "run", output_name="zxq_v1"))


def standin_options(**knobs: str | float) -> SupervisorOptions:
    """Options whose child environment carries the stand-in's FAKE_SD_* knobs; other fields by name."""
    fields = {k: v for k, v in knobs.items() if not k.startswith("FAKE_SD_")}
    env = {**os.environ, **{k: str(v) for k, v in knobs.items() if k.startswith("FAKE_SD_")}}
    return SupervisorOptions(env=env, **fields)  # type: ignore[arg-type]
