# SPDX-License-Identifier: Apache-2.0
"""Backend choice: health, load, model affinity, required models."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.comfy.selection import Candidate, choose_backend


def _name(chosen: Candidate | None) -> str | None:
    return chosen.name if chosen is not None else None


def c(
    name: str,
    *,
    healthy: bool = True,
    ready: bool = True,
    in_flight: int = 0,
    queue: int | None = 0,
    key: object = None,
    models: dict | None = None,
) -> Candidate:
    return Candidate(name, healthy, ready, in_flight, queue, key, models)


def test_unhealthy_unready_and_excluded_backends_are_never_chosen() -> None:
    assert choose_backend([c("a", healthy=False), c("b", ready=False)]) is None
    assert choose_backend([c("a"), c("b")], exclude={"a"}) == c("b")
    assert choose_backend([]) is None


def test_least_loaded_wins_and_load_counts_comfyui_queue() -> None:
    assert _name(choose_backend([c("a", in_flight=2), c("b", in_flight=1)])) == "b"
    assert _name(choose_backend([c("a", queue=3), c("b", in_flight=1, queue=1)])) == "b"
    assert _name(choose_backend([c("a"), c("b")])) == "a"  # ties go to the first


def test_model_affinity_is_worth_one_queued_prompt() -> None:
    backends = [c("a"), c("b", in_flight=1, key="sd15+alice")]
    assert _name(choose_backend(backends, "sd15+alice")) == "b"
    assert _name(choose_backend(backends, "sdxl")) == "a"
    busy = [c("a"), c("b", in_flight=2, key="sd15+alice")]
    assert _name(choose_backend(busy, "sd15+alice")) == "a"
    assert _name(choose_backend(busy, "sd15+alice", affinity_slack=2)) == "b"


def test_required_models() -> None:
    backends = [c("a", models={"checkpoints": frozenset({"x"})}), c("b", in_flight=3, models=None)]
    assert _name(choose_backend(backends, required_models={"checkpoints": ["x"]})) == "a"
    assert _name(choose_backend(backends, required_models={"checkpoints": ["y"]})) == "b"  # unknown list: maybe
    only_a = backends[:1]
    assert choose_backend(only_a, required_models={"loras": ["z"]}) is None


candidates = st.lists(
    st.builds(
        Candidate,
        name=st.sampled_from(["a", "b", "c", "d"]),
        healthy=st.booleans(),
        ready=st.booleans(),
        in_flight=st.integers(0, 5),
        queue_remaining=st.none() | st.integers(0, 5),
        last_model_key=st.sampled_from([None, "m1", "m2"]),
    ),
    max_size=6,
)


@given(candidates, st.sampled_from([None, "m1", "m2"]))
def test_choice_is_usable_and_no_usable_backend_is_clearly_better(backends: list[Candidate], key: object) -> None:
    picked = choose_backend(backends, key)
    usable = [b for b in backends if b.healthy and b.ready]
    if not usable:
        assert picked is None
        return
    assert picked is not None
    assert picked.healthy
    assert picked.ready
    affine = key is not None and picked.last_model_key == key
    assert all(b.load >= picked.load - (1 if affine else 0) for b in usable)
