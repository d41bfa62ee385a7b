"""Pieces of the supervisor without processes: output tails, the ETA tracker, state discovery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.trainer.standin import standin_spec
from trainer.supervisor_events import OutputTail, ProgressTracker
from trainer.supervisor_resume import SavedState, find_latest_state, resume_spec


def test_tail_splits_on_cr_and_lf_across_chunks() -> None:
    tail = OutputTail(limit=3)
    for chunk in [b"steps:  0%| 0/6\rsteps: 17%", b"| 1/6\r\nline two\n", b"\xe5\xad\xa6", b"\xe7\xbf\x92 done"]:
        tail.feed(chunk)
    assert tail.lines() == ("steps: 17%| 1/6", "line two", "学習 done")


def test_tail_drops_cursor_movements() -> None:
    tail = OutputTail()
    tail.feed(b" 50%|#####     | 1/2 [00:00<00:00,  1.07it/s]\x1b[A\n")
    assert tail.lines() == (" 50%|#####     | 1/2 [00:00<00:00,  1.07it/s]",)


def test_tail_is_bounded() -> None:
    tail = OutputTail(limit=2)
    tail.feed(b"a\nb\nc\nd\n")
    assert tail.lines() == ("c", "d")


def step(n: int, t: float, total: int = 10) -> dict[str, object]:
    return {"type": "step", "t": t, "step": n, "total_steps": total, "loss": 0.1, "epoch": 1}


def test_rate_and_eta_from_record_timestamps() -> None:
    tracker = ProgressTracker(smoothing=0.5)
    first = tracker.started({"type": "run_started", "t": 0.0, "total_steps": 10, "resume_step": 0})
    assert (first.step, first.percent, first.eta_s) == (0, 0.0, None)
    assert tracker.stepped(step(1, 100.0)).it_per_s is None  # the first step only sets the baseline
    second = tracker.stepped(step(2, 102.0))
    assert second.it_per_s == pytest.approx(0.5)
    assert second.eta_s == pytest.approx(16.0)
    third = tracker.stepped(step(4, 104.0))  # 1 s/step now; smoothed: 2 + 0.5 * (1 - 2) = 1.5 s/step
    assert third.it_per_s == pytest.approx(1 / 1.5)
    assert third.eta_s == pytest.approx(9.0)
    assert third.percent == 40.0


def test_resumed_run_starts_at_its_step_and_unknown_total_has_no_eta() -> None:
    tracker = ProgressTracker()
    assert tracker.started({"type": "run_started", "t": 0.0, "total_steps": 10, "resume_step": 4}).percent == 40.0
    tracker = ProgressTracker()
    tracker.started({"type": "run_started", "t": 0.0, "total_steps": None, "resume_step": 0})
    tracker.stepped({"type": "step", "t": 1.0, "step": 1})
    later = tracker.stepped({"type": "step", "t": 2.0, "step": 2})
    assert (later.percent, later.eta_s, later.it_per_s) == (None, None, 1.0)


def make_state(output: Path, name: str, step: int, *, complete: bool = True) -> Path:
    folder = output / name
    folder.mkdir(parents=True)
    (folder / "train_state.json").write_text(json.dumps({"current_epoch": 1, "current_step": step}))
    if complete:
        (folder / "random_states_0.pkl").write_bytes(b"x")
    return folder


def test_latest_complete_state_wins(tmp_path: Path) -> None:
    make_state(tmp_path, "run-step00000100-state", 100)
    make_state(tmp_path, "run-000002-state", 150)
    make_state(tmp_path, "run-step00000200-state", 200, complete=False)  # cut off while saving
    make_state(tmp_path, "other-step00000300-state", 300)  # another output name
    (tmp_path / "run-step00000400-state.safetensors").write_bytes(b"")
    assert find_latest_state(tmp_path, "run") == SavedState(tmp_path / "run-000002-state", 150)
    assert find_latest_state(tmp_path / "missing", "run") is None


def test_resume_spec_replaces_earlier_resume_flags(tmp_path: Path) -> None:
    spec = standin_spec(tmp_path).with_extra_args("--resume", "/old", "--skip_until_initial_step", "--keep")
    again = resume_spec(spec, SavedState(Path("/new"), 7))
    assert again.extra_args == ("--keep", "--resume", "/new", "--skip_until_initial_step")
