"""The local ComfyUI runs in its checkout, so every path it is handed is absolute (`make run` has var_dir "var")."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.comfy.local import LocalComfyConfig, LocalComfyUI


def test_relative_settings_become_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = LocalComfyUI(
        LocalComfyConfig(comfy_dir=Path("ComfyUI"), python=Path("python3"), models_dir=Path("models"),
                         var_dir=Path("var"), port=8188)
    )  # fmt: skip
    argv = local.argv()
    assert argv[0] == "python3", "a bare command name is looked up on PATH as given"
    assert argv[1] == str(tmp_path / "ComfyUI" / "main.py")
    for flag in ("--extra-model-paths-config", "--input-directory", "--output-directory", "--user-directory"):
        assert Path(argv[argv.index(flag) + 1]).is_absolute(), flag
    assert local.home == tmp_path / "var" / "comfyui"
    assert local.config.models_dir == tmp_path / "models"
