# SPDX-License-Identifier: Apache-2.0
"""Model files per folder from an ``extra_model_paths.yaml``, listed the way ComfyUI does (recursively)."""

from __future__ import annotations

from pathlib import Path

import yaml


def models_from_extra_paths(config: Path) -> dict[str, list[str]]:
    """``{folder: [file names relative to it]}`` for every folder the file maps."""
    models: dict[str, list[str]] = {}
    for section in (yaml.safe_load(config.read_text()) or {}).values():
        base = Path(section.get("base_path", "."))
        for folder, subdirs in section.items():
            if folder in ("base_path", "is_default"):
                continue
            for sub in str(subdirs).split("\n"):
                root = base / sub.strip()
                if sub.strip() and root.is_dir():
                    names = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
                    models.setdefault(folder, []).extend(sorted(names))
    return models
