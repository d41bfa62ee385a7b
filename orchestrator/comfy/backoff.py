# SPDX-License-Identifier: Apache-2.0
"""Exponential backoff with jitter, shared by websocket reconnects and local restarts."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff_delay(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before retry number ``attempt`` (0-based): ``initial·2^attempt`` capped at ``maximum``,
    then "equal jitter" — between half and all of it — so many clients do not retry in step."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    base = min(maximum, initial * (2.0 ** min(attempt, 62)))
    return base / 2.0 + rand() * base / 2.0
