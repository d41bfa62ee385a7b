"""A worker that lost every claim to other processes tries again soon, and never waits long beside a full queue."""

from __future__ import annotations

import random

from orchestrator.jobs.dispatcher import ContendedBackoff


def test_waits_grow_with_each_loss_but_stay_under_the_bound() -> None:
    random.seed(7)
    backoff = ContendedBackoff()  # the worker's own steps: 5 ms first, 50 ms at most
    waits = [backoff.next_wait(ceiling_s=2.0) for _ in range(40)]
    assert 0.0025 <= waits[0] <= 0.0075
    assert max(waits) <= 0.05
    # once the step reaches the bound, each wait lies between half the bound and the bound, far below the idle poll
    assert min(waits[10:]) >= 0.025


def test_a_win_starts_the_waits_over() -> None:
    backoff = ContendedBackoff(first_s=0.005, max_s=0.05)
    for _ in range(10):
        backoff.next_wait(ceiling_s=2.0)
    backoff.reset()
    assert backoff.next_wait(ceiling_s=2.0) <= 0.0075


def test_a_short_idle_poll_caps_the_wait() -> None:
    backoff = ContendedBackoff(first_s=0.005, max_s=0.05)
    assert all(backoff.next_wait(ceiling_s=0.01) <= 0.01 for _ in range(20))
