# SPDX-License-Identifier: Apache-2.0
"""Where an installed engine lives (``<engines dir>/<name>``, by default ``<var_dir>/engines/<name>``) and what
its step markers say.

::

    engines/comfyui/
      src/                    the checkout (git), at the pinned commit
      venv/                   its own Python environment
      extra_model_paths.yaml  ComfyUI's view of our models store (outside the checkout: ComfyUI would
                              otherwise load it for every instance started from that checkout)
      tokenizers/             sd-scripts only: the offline CLIP tokenizer cache
      steps/<step>.json       one marker per finished step: the inputs it ran with
      install.json            written when every step is done: what is installed
      install.log             the output of every command the installer ran
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.engines.specs import ENGINES


@dataclass(frozen=True)
class EngineLayout:
    """The folders and files of one engine's install."""

    root: Path

    @classmethod
    def of(cls, engines_dir: Path, name: str) -> EngineLayout:
        """The layout of engine ``name`` in ``engines_dir``."""
        return cls((engines_dir / name).absolute())

    @property
    def name(self) -> str:
        """The engine's name (its folder's)."""
        return self.root.name

    @property
    def src(self) -> Path:
        """The checkout."""
        return self.root / "src"

    @property
    def venv(self) -> Path:
        """The engine's virtual environment."""
        return self.root / "venv"

    @property
    def python(self) -> Path:
        """The venv's Python."""
        return self.venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    @property
    def model_paths(self) -> Path:
        """ComfyUI's extra_model_paths.yaml for our store."""
        return self.root / "extra_model_paths.yaml"

    @property
    def tokenizers(self) -> Path:
        """sd-scripts' CLIP tokenizer cache."""
        return self.root / "tokenizers"

    @property
    def manifest_path(self) -> Path:
        """``install.json``."""
        return self.root / "install.json"

    @property
    def log_path(self) -> Path:
        """``install.log``."""
        return self.root / "install.log"

    def marker(self, step: str) -> Path:
        """The marker file of ``step``."""
        return self.root / "steps" / f"{step}.json"

    def read_marker(self, step: str) -> dict[str, Any] | None:
        """What a finished step recorded; None when it has not finished."""
        try:
            data = json.loads(self.marker(step).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_marker(self, step: str, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Record that ``step`` finished with ``inputs`` (atomically: a torn marker never counts)."""
        write_json(self.marker(step), {"inputs": inputs, "outputs": outputs, "finished_at": time.time()})

    def digest(self, step: str) -> str | None:
        """A short hash of the inputs ``step`` finished with, for the steps that depend on it."""
        marker = self.read_marker(step)
        if marker is None:
            return None
        return hashlib.sha256(json.dumps(marker.get("inputs"), sort_keys=True).encode()).hexdigest()[:16]

    def manifest(self) -> dict[str, Any] | None:
        """``install.json`` of a complete install; None otherwise."""
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("complete") else None


def write_json(path: Path, value: object) -> None:
    """Write JSON atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def installed(engines_dir: Path, name: str) -> EngineLayout | None:
    """The layout of a complete install of ``name`` whose checkout and Python are still there."""
    layout = EngineLayout.of(engines_dir, name)
    if layout.manifest() is None or not layout.python.exists() or not layout.src.is_dir():
        return None
    return layout


def engine_status(engines_dir: Path, name: str, steps: list[str]) -> dict[str, Any]:
    """What ``atelier engines status`` shows for one engine."""
    layout = EngineLayout.of(engines_dir, name)
    manifest = layout.manifest()
    done = [step for step in steps if layout.read_marker(step) is not None]
    spec = ENGINES[name]
    state = "installed" if installed(engines_dir, name) else ("partial" if done else "missing")
    status: dict[str, Any] = {
        "name": name,
        "state": state,
        "path": str(layout.root),
        "steps_done": done,
        "steps_pending": [step for step in steps if step not in done],
        "pinned_commit": spec.commit,
        "pinned_as": spec.pinned_as,
    }
    if manifest is not None:
        status.update({key: manifest.get(key) for key in ("commit", "source", "torch", "torch_version", "python")})
        status["at_pinned_commit"] = manifest.get("commit") == spec.commit
    return status
