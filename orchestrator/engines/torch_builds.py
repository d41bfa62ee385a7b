# SPDX-License-Identifier: Apache-2.0
"""Which torch build an engine gets: the accelerator found on this machine and the index that serves it."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

TorchBuild = Literal["cpu", "cuda", "rocm", "mps"]
TORCH_BUILDS: tuple[TorchBuild, ...] = ("cpu", "cuda", "rocm", "mps")

#: PyTorch's own indexes for the builds the package index does not carry (Linux CPU-only, ROCm).
PYTORCH_INDEX = "https://download.pytorch.org/whl"
ROCM_TAG = "rocm6.4"


def detect_build() -> TorchBuild:
    """cuda where ``nvidia-smi`` lists a GPU, rocm where ROCm is installed, mps on Apple silicon, else cpu."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is not None:
        try:
            listed = subprocess.run([nvidia_smi, "-L"], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            listed = None
        if listed is not None and listed.returncode == 0 and "GPU" in listed.stdout:
            return "cuda"
    if shutil.which("rocminfo") or shutil.which("rocm-smi") or Path("/opt/rocm").is_dir():
        return "rocm"
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps"
    return "cpu"


def index_for(build: TorchBuild) -> str | None:
    """The index URL that serves ``build``; None = the package index pip is configured with."""
    if build == "cpu" and sys.platform != "darwin":
        return f"{PYTORCH_INDEX}/cpu"
    if build == "rocm":
        return f"{PYTORCH_INDEX}/{ROCM_TAG}"
    return None  # PyPI's Linux wheels are CUDA builds; its macOS wheels carry MPS


def build_hint(build: TorchBuild, index: str | None) -> str:
    """What to do when the torch step or the import check failed for ``build``."""
    where = index or "the configured package index"
    if build == "cpu":
        return (
            f"CPU builds of torch, torchvision and torchaudio come from {where}. Where that index cannot be reached "
            "and the package index offers only CUDA builds of torchvision/torchaudio, ComfyUI cannot be installed "
            "for the CPU by this command (it never patches installed packages): pass --torch-index-url with a "
            "mirror of that index, or install the engine by hand and set ATELIER_COMFYUI_DIR/ATELIER_COMFYUI_PYTHON "
            "(or ATELIER_SD_SCRIPTS_DIR/ATELIER_SD_SCRIPTS_PYTHON)"
        )
    return f"the {build} build of torch comes from {where}; pass --torch-index-url to take it from another index"
