"""Properties of the scheduler over random queues, on the discrete-event model in ``simulation.py``.

* Aging: a job passed over so that a backend could reuse its loaded model starts within
  ``affinity_max_wait_s`` of the first time it was passed over (the moment the order without affinity would have
  started it), whatever the owners, priorities and backends -- given run-time estimates that hold.
* Against a real FIFO run: on one backend no job waits longer than FIFO + ``affinity_max_wait_s``. On several
  backends a reordering also changes which backend holds which model later on, so the comparison holds within
  one more job turn (run + load); an exact bound there is not possible for a scheduler that cannot see the
  future (a 2-backend, 8-job counterexample to the exact bound is kept below).
"""

from __future__ import annotations

import random
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.jobs.scheduling import Policy
from tests.unit.jobs.simulation import SimJob, simulate

EPSILON = 1e-6
KEYS = "abcdef"


@st.composite
def queues(draw: st.DrawFn, *, owners: int, priorities: bool) -> list[SimJob]:
    """Up to 40 jobs arriving over 30 s, with a few model keys and run times."""
    keys = draw(st.integers(1, len(KEYS)))
    count = draw(st.integers(1, 40))
    return [
        SimJob(
            arrive_s=draw(st.floats(0.0, 30.0)),
            owner=draw(st.integers(0, owners - 1)),
            key=KEYS[draw(st.integers(0, keys - 1))],
            run_s=draw(st.floats(0.1, 5.0)),
            priority=draw(st.sampled_from([0, 0, 0, 1])) if priorities else 0,
            id=uuid.UUID(int=index + 1),
        )
        for index in range(count)
    ]


def _policy(jobs: list[SimJob], load_s: float, max_wait_s: float) -> Policy:
    """Estimates that hold: the longest run, and the load as it is."""
    longest = max(job.run_s for job in jobs)
    return Policy(affinity_max_wait_s=max_wait_s, expected_run_s={"generation": longest}, expected_load_s=load_s)


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(queues(owners=4, priorities=True), st.integers(1, 3), st.floats(0.0, 10.0), st.floats(0.5, 20.0))
def test_a_job_passed_over_for_affinity_starts_within_the_bound(
    jobs: list[SimJob], lanes: int, load_s: float, max_wait_s: float
) -> None:
    outcome = simulate(jobs, lanes=lanes, load_s=load_s, policy=_policy(jobs, load_s, max_wait_s))
    for job_id, first_passed in outcome.passed_over.items():
        assert outcome.started[job_id] <= first_passed + max_wait_s + EPSILON


@SETTINGS
@given(queues(owners=1, priorities=False), st.floats(0.0, 10.0), st.floats(0.5, 20.0))
def test_on_one_backend_no_job_waits_longer_than_fifo_plus_the_bound(
    jobs: list[SimJob], load_s: float, max_wait_s: float
) -> None:
    ours = simulate(jobs, lanes=1, load_s=load_s, policy=_policy(jobs, load_s, max_wait_s))
    fifo = simulate(jobs, lanes=1, load_s=load_s, policy=Policy(fair=False))
    for job in jobs:
        assert ours.wait(job) <= fifo.wait(job) + max_wait_s + EPSILON


@SETTINGS
@given(queues(owners=1, priorities=False), st.integers(2, 3), st.floats(0.0, 10.0), st.floats(0.5, 20.0))
def test_on_several_backends_no_job_waits_longer_than_fifo_plus_the_bound_and_one_turn(
    jobs: list[SimJob], lanes: int, load_s: float, max_wait_s: float
) -> None:
    ours = simulate(jobs, lanes=lanes, load_s=load_s, policy=_policy(jobs, load_s, max_wait_s))
    fifo = simulate(jobs, lanes=lanes, load_s=load_s, policy=Policy(fair=False))
    turn = max(job.run_s for job in jobs) + load_s
    for job in jobs:
        assert ours.wait(job) <= fifo.wait(job) + max_wait_s + turn + EPSILON


def test_the_exact_fifo_bound_does_not_hold_on_two_backends() -> None:
    """The counterexample a random search found: job 1 waits 0.35 job turns more than FIFO + the bound. The one
    affinity pick (job 8 on the backend holding ``c``) left the other backend to load models in an order that
    happened to cost two loads more than FIFO's order did here."""
    spec = [(3, 0.4, "c", 1.3), (4, 1.9, "c", 1.0), (7, 2.2, "b", 1.4), (8, 3.0, "c", 1.4), (5, 3.3, "a", 0.5),
            (2, 3.4, "b", 0.6), (6, 3.9, "c", 1.7), (1, 4.9, "a", 1.2)]  # fmt: skip
    jobs = [SimJob(arrive, 0, key, run, id=uuid.UUID(int=n)) for n, arrive, key, run in spec]
    ours = simulate(jobs, lanes=2, load_s=3.1, policy=_policy(jobs, 3.1, 2.2))
    fifo = simulate(jobs, lanes=2, load_s=3.1, policy=Policy(fair=False))
    last = next(job for job in jobs if job.id.int == 1)
    assert ours.wait(last) > fifo.wait(last) + 2.2
    assert ours.wait(last) <= fifo.wait(last) + 2.2 + max(job.run_s for job in jobs) + 3.1


def test_affinity_halves_the_model_loads_of_a_mixed_queue() -> None:
    """3 checkpoints x 4 LoRAs, 60 jobs in random order, 2 backends, a load 3x a run, a bound of 15 loads: loads
    <= half of FIFO's and the makespan no worse (the benchmark measures the same on the stand-in)."""
    rng = random.Random(13)
    keys = [f"{c}+{lora}" for c in "xyz" for lora in range(4)]
    jobs = [SimJob(0.0, 0, rng.choice(keys), 1.0, id=uuid.UUID(int=n + 1)) for n in range(60)]
    ours = simulate(jobs, lanes=2, load_s=3.0, policy=_policy(jobs, 3.0, 45.0))
    fifo = simulate(jobs, lanes=2, load_s=3.0, policy=Policy(fair=False))
    assert ours.loads <= 0.5 * fifo.loads
    assert ours.makespan_s <= fifo.makespan_s


def test_light_owners_are_not_starved_by_a_heavy_one() -> None:
    """One owner queues 500 jobs, then five owners 10 each: each light owner's p95 wait stays within twice what it
    is when the heavy owner is absent (under FIFO it is ~10x)."""
    heavy = [SimJob(0.0, 0, "k", 1.0, id=uuid.UUID(int=n + 1)) for n in range(500)]
    light = [SimJob(0.01, 1 + n // 10, "k", 1.0, id=uuid.UUID(int=1000 + n)) for n in range(50)]
    policy = Policy(affinity_max_wait_s=30.0, expected_run_s={"generation": 1.0})
    together = simulate(heavy + light, lanes=2, load_s=3.0, policy=policy)
    alone = simulate(light, lanes=2, load_s=3.0, policy=policy)
    for owner in range(1, 6):
        mine = [job for job in light if job.owner == owner]
        assert _p95([together.wait(j) for j in mine]) <= 2 * _p95([alone.wait(j) for j in mine])


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]
