# SPDX-License-Identifier: Apache-2.0
"""The engines `atelier engines install` knows: where they come from and the commits our engine tests pass on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EngineSpec:
    """One installable engine.

    ``torch_packages`` are installed first, as one set, from the index of the chosen torch build (so the
    requirements file then finds them satisfied); ``bpe_packages`` are installed without their
    dependencies only for a data file they carry (sd-scripts' offline CLIP tokenizer is built from it).
    """

    name: str
    title: str
    source: str
    commit: str
    pinned_as: str
    torch_packages: tuple[str, ...]
    import_check: tuple[str, ...]
    bpe_packages: tuple[str, ...] = ()
    requirements: str = "requirements.txt"

    def __post_init__(self) -> None:
        if len(self.commit) != 40:
            raise ValueError(f"{self.name}: pin a full 40-character commit, not {self.commit!r}")


COMFYUI = EngineSpec(
    name="comfyui",
    title="ComfyUI",
    source="https://github.com/comfyanonymous/ComfyUI.git",
    commit="de6b062fb5ed1c9b471a3ebcd614705d93d67560",
    pinned_as="v0.33.0",
    torch_packages=("torch", "torchvision", "torchaudio"),
    import_check=("torch", "torchvision", "torchaudio"),
)

SD_SCRIPTS = EngineSpec(
    name="sd-scripts",
    title="kohya sd-scripts",
    source="https://github.com/kohya-ss/sd-scripts.git",
    commit="48d368fa557731ad0488c07304dfeba8c07910eb",
    pinned_as="2026-02-16",
    torch_packages=("torch", "torchvision"),
    import_check=("torch", "torchvision"),
    bpe_packages=("open-clip-torch",),
)

ENGINES: dict[str, EngineSpec] = {spec.name: spec for spec in (COMFYUI, SD_SCRIPTS)}


def node_pack_dir() -> Path | None:
    """Our ComfyUI node pack in this checkout (``custom_nodes/atelier_nodes``); None in an install without it."""
    candidate = Path(__file__).resolve().parents[2] / "custom_nodes" / "atelier_nodes"
    return candidate if (candidate / "__init__.py").is_file() else None
