# SPDX-License-Identifier: Apache-2.0
"""Steps per second and time left, computed from when ComfyUI's ``progress`` frames arrive."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.comfy.events import Progress


@dataclass(slots=True)
class _NodeTrack:
    node: str | None
    last_step: int
    last_time: float
    rate: float | None = None


class ProgressMeter:
    """Turns (node, step, total, arrival time) into :class:`Progress` with it/s and ETA.

    The rate is an exponential moving average of the step rate between frames, so one
    slow step (garbage collection, a preview encode) does not swing the ETA. A node's
    clock starts when it begins executing (:meth:`node_started`), or else at its first
    frame, whose own rate is then unknown; a node that starts over counts from its last frame.
    """

    def __init__(self, smoothing: float = 0.3) -> None:
        if not 0.0 < smoothing <= 1.0:
            raise ValueError("smoothing must be in (0, 1]")
        self._alpha = smoothing
        self._track: _NodeTrack | None = None
        self._started: dict[str, float] = {}

    def node_started(self, node: str, now: float) -> None:
        """Note that ``node`` began executing at ``now`` (seconds, monotonic)."""
        self._started = {node: now}

    def update(self, node: str | None, step: int, total: int, now: float) -> Progress:
        """Record one progress frame and return the normalised event."""
        track = self._track
        if track is not None and track.node == node and step < track.last_step:
            track = self._track = _NodeTrack(node, 0, track.last_time)  # the node started over
        elif track is None or track.node != node:
            start = self._started.get(node) if node is not None else None
            track = _NodeTrack(node, 0, start) if start is not None else _NodeTrack(node, step, now)
            self._track = track
        elapsed = now - track.last_time
        done = step - track.last_step
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            track.rate = rate if track.rate is None else self._alpha * rate + (1 - self._alpha) * track.rate
        track.last_step, track.last_time = step, now
        return _progress(node, step, total, track.rate)


def _progress(node: str | None, step: int, total: int, rate: float | None) -> Progress:
    percent = round(100.0 * step / total, 2) if total > 0 else 0.0
    eta = max(total - step, 0) / rate if rate and total > 0 else None
    return Progress(
        step=step,
        total=total,
        percent=min(percent, 100.0),
        it_per_s=round(rate, 4) if rate else None,
        eta_s=round(eta, 3) if eta is not None else None,
        node=node,
    )
