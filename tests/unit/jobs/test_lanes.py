"""The worker's lane book: room per lane, what each will have loaded, learnt run times."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from orchestrator.jobs.kinds import LaneState
from orchestrator.jobs.lanes import SLOT, LaneBook


class _Backends:
    """Two backends of the ``generation`` kind, two prompts each; the second one not ready."""

    name = "generation"

    def __init__(self) -> None:
        self.states = [LaneState("http://a", 2), LaneState("http://b", 0)]

    def lanes(self) -> Sequence[LaneState]:
        return self.states

    def on_lanes_changed(self, callback: Callable[[], None]) -> None:
        return None


def test_lanes_have_room_until_full_and_remember_the_last_model() -> None:
    backends = _Backends()
    book = LaneBook({"generation": backends}, frozenset({"noop"}))
    assert [(lane.name, lane.load) for lane in book.free()] == [("http://a", 0), (SLOT, 0)]
    assert book.take("http://a", "ckpt-1") is True  # nothing loaded yet
    assert book.take("http://a", "ckpt-1") is False
    assert [lane.name for lane in book.free()] == [SLOT]  # two prompts: full
    book.give_back("http://a")
    (lane, _slot) = book.free()
    assert (lane.loaded_key, lane.load) == ("ckpt-1", 1)
    backends.states[1] = LaneState("http://b", 2)
    assert "http://b" in [lane.name for lane in book.free()]
    assert book.is_backend("http://a")
    assert not book.is_backend(SLOT)


def test_run_times_are_learnt_with_and_without_a_model_load() -> None:
    book = LaneBook({}, frozenset({"noop"}))
    assert book.expected_run_s() == {}
    assert book.expected_load_s() == 0.0
    book.record_run("generation", 2.0, loaded=False)
    book.record_run("generation", 5.0, loaded=True)
    assert book.expected_run_s() == {"generation": 2.0}
    assert book.expected_load_s() == 3.0
    book.record_run("generation", 3.0, loaded=False)
    assert 2.0 < book.expected_run_s()["generation"] < 3.0
