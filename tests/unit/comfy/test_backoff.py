# SPDX-License-Identifier: Apache-2.0
"""Reconnect/restart delays."""

from __future__ import annotations

import pytest

from orchestrator.comfy.backoff import backoff_delay


def test_doubles_then_caps_with_equal_jitter() -> None:
    assert [backoff_delay(n, initial=1.0, maximum=8.0, rand=lambda: 1.0) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff_delay(2, initial=1.0, maximum=8.0, rand=lambda: 0.0) == 2.0
    assert backoff_delay(10_000, initial=0.5, maximum=30.0, rand=lambda: 0.5) == 22.5


def test_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(-1, initial=1.0, maximum=2.0)
