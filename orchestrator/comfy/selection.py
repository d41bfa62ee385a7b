# SPDX-License-Identifier: Apache-2.0
"""Choosing a backend for a prompt: health first, then load, then model affinity (pure logic)."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the choice needs to know about one backend."""

    name: str
    healthy: bool
    ready: bool
    in_flight: int = 0
    queue_remaining: int | None = None
    last_model_key: Hashable | None = None
    #: Model files per folder ("checkpoints" -> names); None when not known yet.
    models: Mapping[str, frozenset[str]] | None = field(default=None, hash=False)

    @property
    def load(self) -> int:
        """Prompts ahead of a new one. ComfyUI's count includes ours once submitted, so the larger of
        the two is taken (ours may not have reached it yet; others' prompts only it knows)."""
        return max(self.in_flight, self.queue_remaining or 0)

    def offers(self, required: Mapping[str, Collection[str]]) -> bool:
        """Whether the backend has every required model file (unknown lists are assumed to)."""
        if self.models is None:
            return True
        return all(set(names) <= self.models.get(folder, frozenset()) for folder, names in required.items())


def choose_backend(
    candidates: Sequence[Candidate],
    model_key: Hashable | None = None,
    *,
    exclude: Collection[str] = (),
    required_models: Mapping[str, Collection[str]] | None = None,
    affinity_slack: int = 1,
) -> Candidate | None:
    """The best backend for a prompt, or None when none is usable.

    Only healthy, ready, not excluded backends that offer ``required_models`` are considered.
    The least loaded wins, except that a backend whose last prompt used the same ``model_key``
    (checkpoint + LoRA set: no model load needed) counts as ``affinity_slack`` prompts less
    loaded, and wins ties. Remaining ties go to the earlier backend in ``candidates``.
    """
    usable = [
        (index, c)
        for index, c in enumerate(candidates)
        if c.healthy and c.ready and c.name not in exclude and c.offers(required_models or {})
    ]
    if not usable:
        return None

    def score(item: tuple[int, Candidate]) -> tuple[int, int, int, int]:
        index, c = item
        affine = model_key is not None and c.last_model_key == model_key
        return (c.load - (affinity_slack if affine else 0), 0 if affine else 1, c.load, index)

    return min(usable, key=score)[1]
