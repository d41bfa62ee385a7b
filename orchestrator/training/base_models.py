"""Base checkpoints for training: names under ``<models_dir>/checkpoints`` and their model family.

A request names a checkpoint the way ComfyUI does (its path relative to the checkpoints folder). The
family (which sd-scripts script trains it) is read from the safetensors header's tensor names, so a
client need not say it; a header that does not tell is reported and the client may name the family.
"""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.modelfiles import family_of, tensor_names
from trainer.presets import ModelFamily

CHECKPOINT_SUFFIXES = (".safetensors",)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._\-/]*$")


class UnknownBaseModel(ValueError):
    """The name does not point to a checkpoint in the models store."""


def checkpoint_path(models_dir: Path, name: str) -> Path:
    """The file of checkpoint ``name`` (relative to ``<models_dir>/checkpoints``); raises UnknownBaseModel.

    The name is checked as text (no ``..``, no absolute paths), so a checkpoint may be a symlink to a
    file elsewhere.
    """
    parts = name.split("/")
    if not _NAME.match(name) or any(part in ("", ".", "..") for part in parts):
        raise UnknownBaseModel(f"{name!r} is not a checkpoint name (a path relative to models/checkpoints)")
    if not name.endswith(CHECKPOINT_SUFFIXES):
        raise UnknownBaseModel(f"{name!r}: only .safetensors checkpoints can be trained on")
    path = (models_dir / "checkpoints" / name).absolute()
    if not path.is_file():
        known = ", ".join(available_checkpoints(models_dir)[:20]) or "none"
        raise UnknownBaseModel(f"no checkpoint {name!r} in {models_dir / 'checkpoints'} (available: {known})")
    return path


def available_checkpoints(models_dir: Path) -> list[str]:
    """Names of the checkpoints in the store, sorted."""
    root = models_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(CHECKPOINT_SUFFIXES))


def detect_family(path: Path) -> ModelFamily | None:
    """SD1.5, SDXL or Flux.1 from the checkpoint's tensor names; None when the header does not tell."""
    family = family_of(tensor_names(path))
    return ModelFamily(family) if family is not None else None
