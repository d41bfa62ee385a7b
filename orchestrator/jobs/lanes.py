"""The worker's lanes: which have room, what each will have loaded, and how long runs take there.

A lane is a place to run one more job: a ComfyUI backend with room for another prompt (its kind manages them,
see :class:`~orchestrator.jobs.kinds.LaneSource`), or a plain worker slot for kinds that need no engine. The
book remembers, per lane, what the last job dispatched there needs loaded -- that is what the engine will have
loaded when the next one starts -- and learns run times with and without a model load for the scheduler's
deadline checks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.jobs.kinds import LaneSource
from orchestrator.jobs.scheduling import Lane

SLOT = "slot"
_SMOOTHING = 0.2


@dataclass
class _RunTime:
    without_load: float | None = None
    with_load: float | None = None

    def add(self, seconds: float, *, loaded: bool) -> None:
        old = self.with_load if loaded else self.without_load
        new = seconds if old is None else old + _SMOOTHING * (seconds - old)
        if loaded:
            self.with_load = new
        else:
            self.without_load = new


class LaneBook:
    """Lanes with room, their loaded models and learnt run times (one per worker)."""

    def __init__(self, sources: Mapping[str, LaneSource], slot_kinds: frozenset[str]) -> None:
        self._sources = dict(sources)
        self._slot_kinds = slot_kinds
        self._in_use: Counter[str] = Counter()
        self._loaded: dict[str, str | None] = {}
        self._times: dict[str, _RunTime] = {}

    def free(self) -> list[Lane]:
        """Every lane with room for one more job."""
        lanes: list[Lane] = []
        for kind, source in self._sources.items():
            for state in source.lanes():
                used = self._in_use[state.name]
                if state.capacity > used:
                    lanes.append(Lane(state.name, frozenset({kind}), self._loaded.get(state.name), used))
        if self._slot_kinds:
            lanes.append(Lane(SLOT, self._slot_kinds, None, self._in_use[SLOT]))
        return lanes

    def is_backend(self, lane: str) -> bool:
        """Whether the lane is an engine backend (its name is then the backend's URL)."""
        return lane != SLOT

    def take(self, lane: str, affinity_key: str | None) -> bool:
        """A job goes to ``lane``; True when the lane has to load its model first."""
        self._in_use[lane] += 1
        if lane == SLOT:
            return False
        loads = affinity_key is not None and self._loaded.get(lane) != affinity_key
        if affinity_key is not None:
            self._loaded[lane] = affinity_key
        return loads

    def give_back(self, lane: str) -> None:
        """A job left ``lane``."""
        self._in_use[lane] -= 1
        if self._in_use[lane] <= 0:
            del self._in_use[lane]

    def record_run(self, kind: str, seconds: float, *, loaded: bool) -> None:
        """How long a job of ``kind`` ran on its engine (``loaded``: it had to load its model first)."""
        self._times.setdefault(kind, _RunTime()).add(seconds, loaded=loaded)

    def expected_run_s(self) -> dict[str, float]:
        """Per kind, the learnt run time of a job that needs no model load."""
        found: dict[str, float] = {}
        for kind, times in self._times.items():
            value = times.without_load if times.without_load is not None else times.with_load
            if value is not None:
                found[kind] = value
        return found

    def expected_load_s(self) -> float:
        """The learnt extra time of a run that loads its model first (the largest over kinds)."""
        extra = [
            t.with_load - t.without_load
            for t in self._times.values()
            if t.with_load is not None and t.without_load is not None
        ]
        return max([0.0, *extra])
