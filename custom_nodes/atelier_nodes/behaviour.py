# SPDX-License-Identifier: Apache-2.0
"""What the numeric markers check when ComfyUI runs them; shared by both entry styles.

Standard library only: this module imports without ComfyUI.
"""

from __future__ import annotations


def check_bounds(node_id: str, name: str, value: float, low: float, high: float) -> None:
    """Raise ``ValueError`` when ``low > high`` or ``value`` lies outside ``[low, high]``."""
    if low > high:
        raise ValueError(f"{node_id} {name!r}: min {low} is larger than max {high}")
    if not low <= value <= high:
        raise ValueError(f"{node_id} {name!r}: value {value} is outside [{low}, {high}]")
