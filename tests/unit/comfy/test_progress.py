# SPDX-License-Identifier: Apache-2.0
"""it/s and ETA from the arrival times of progress frames."""

from __future__ import annotations

import pytest

from orchestrator.comfy.events import Progress
from orchestrator.comfy.progress import ProgressMeter


def test_rate_and_eta_from_the_node_start() -> None:
    meter = ProgressMeter(smoothing=0.5)
    meter.node_started("5", 10.0)
    first = meter.update("5", 1, 4, 12.0)
    assert first == Progress(step=1, total=4, percent=25.0, it_per_s=0.5, eta_s=6.0, node="5")
    second = meter.update("5", 2, 4, 13.0)  # 1 it/s now, smoothed with 0.5 -> 0.75
    assert second.it_per_s == 0.75
    assert second.eta_s == pytest.approx(2 / 0.75, abs=1e-3)
    last = meter.update("5", 4, 4, 14.0)
    assert (last.percent, last.eta_s) == (100.0, 0.0)


def test_first_frame_without_a_start_has_no_rate() -> None:
    meter = ProgressMeter()
    first = meter.update("10", 1, 5, 3.0)
    assert (first.it_per_s, first.eta_s) == (None, None)
    later = meter.update("10", 3, 5, 4.0)  # two steps in a second
    assert later.it_per_s == 2.0
    assert later.eta_s == 1.0


def test_another_node_or_a_restart_resets_the_clock() -> None:
    meter = ProgressMeter(smoothing=1.0)
    meter.node_started("5", 0.0)
    meter.update("5", 1, 2, 10.0)
    meter.node_started("9", 10.0)
    other = meter.update("9", 1, 2, 10.5)
    assert other.it_per_s == 2.0
    meter.update("9", 2, 2, 11.0)
    again = meter.update("9", 1, 2, 13.0)  # started over: one step since its last frame
    assert again.it_per_s == 0.5


def test_degenerate_frames() -> None:
    meter = ProgressMeter()
    same_time = meter.update(None, 1, 0, 1.0)
    assert (same_time.percent, same_time.eta_s, same_time.node) == (0.0, None, None)
    with pytest.raises(ValueError, match="smoothing"):
        ProgressMeter(smoothing=0.0)
