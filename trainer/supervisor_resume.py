"""Resuming a run from the latest ``--save_state`` folder sd-scripts left in its output directory.

sd-scripts (commit 48d368fa) names state folders ``<output_name>-step<8 digits>-state`` (every N steps),
``<output_name>-<6 digits>-state`` (every N epochs) and ``<output_name>-state`` (at the end), and writes
``train_state.json`` (``current_step``) into each. ``--resume <folder>`` loads one; with
``--skip_until_initial_step`` training continues at that step instead of starting the step count again.
accelerate writes ``random_states_<process>.pkl`` last, so a folder without it was cut off mid-save.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from trainer.config import LaunchSpec

TRAIN_STATE_FILE = "train_state.json"


@dataclass(frozen=True)
class SavedState:
    """A complete state folder and the global step it was saved at."""

    path: Path
    step: int


def _state_step(folder: Path, output_name: str) -> int | None:
    """The folder's step, or None when it is not a complete state of this run."""
    name = folder.name
    pattern = rf"{re.escape(output_name)}(-step\d{{8}}|-\d{{6}})?-state"
    if not folder.is_dir() or not re.fullmatch(pattern, name):
        return None
    if not any(folder.glob("random_states_*.pkl")):
        return None
    try:
        step = json.loads((folder / TRAIN_STATE_FILE).read_text(encoding="utf-8"))["current_step"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return step if isinstance(step, int) and step > 0 else None


def find_latest_state(output_dir: Path, output_name: str) -> SavedState | None:
    """The complete state folder with the highest step, or None."""
    if not output_dir.is_dir():
        return None
    best: SavedState | None = None
    for folder in output_dir.iterdir():
        step = _state_step(folder, output_name)
        if step is not None and (best is None or step > best.step):
            best = SavedState(folder, step)
    return best


def resume_spec(spec: LaunchSpec, state: SavedState) -> LaunchSpec:
    """The launch spec that continues from ``state`` (command-line flags override ``config.toml``).

    Resume flags of an earlier resume are replaced, not repeated.
    """
    kept: list[str] = []
    args = iter(spec.extra_args)
    for arg in args:
        if arg == "--resume":
            next(args, None)
        elif arg != "--skip_until_initial_step":
            kept.append(arg)
    return replace(spec, extra_args=(*kept, "--resume", str(state.path), "--skip_until_initial_step"))


def resume_from_run_dir(spec: LaunchSpec) -> LaunchSpec | None:
    """Resume a run from its own latest state; None when it saved none."""
    state = find_latest_state(spec.layout.output_dir, spec.layout.output_name)
    return None if state is None else resume_spec(spec, state)
