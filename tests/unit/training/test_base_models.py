"""Checkpoint names and family detection from safetensors headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from orchestrator.training.base_models import UnknownBaseModel, checkpoint_path, detect_family
from trainer.presets import ModelFamily

ONE = np.zeros((1,), dtype=np.float32)


def _checkpoint(path: Path, *names: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({name: ONE for name in names}, str(path))
    return path


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (("cond_stage_model.transformer.text_model.x", "model.diffusion_model.input_blocks.0.0.weight"), "sd15"),
        (("conditioner.embedders.1.model.x", "model.diffusion_model.input_blocks.0.0.weight"), "sdxl"),
        (("double_blocks.0.img_attn.qkv.weight",), "flux"),
        (("model.diffusion_model.double_blocks.0.img_attn.qkv.weight",), "flux"),
        (("cond_stage_model.model.transformer.x", "model.diffusion_model.input_blocks.0.0.weight"), None),
        (("foo.weight",), None),
    ],
)
def test_family_from_tensor_names(tmp_path: Path, names: tuple[str, ...], family: str | None) -> None:
    found = detect_family(_checkpoint(tmp_path / "m.safetensors", *names))
    assert found == (ModelFamily(family) if family else None)


def test_family_of_a_file_that_is_not_safetensors_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"\xff" * 16)
    assert detect_family(tmp_path / "x.safetensors") is None


def test_checkpoint_names(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "checkpoints" / "sd" / "a.safetensors", "foo")
    assert checkpoint_path(tmp_path, "sd/a.safetensors") == path
    for bad in ("../a.safetensors", "/etc/passwd", "sd/../../x.safetensors", "a.ckpt", "", "sd//a.safetensors"):
        with pytest.raises(UnknownBaseModel):
            checkpoint_path(tmp_path, bad)
    with pytest.raises(UnknownBaseModel, match=r"available: sd/a\.safetensors"):
        checkpoint_path(tmp_path, "missing.safetensors")
