"""Which queued job runs next, on which lane (a backend, or a worker slot): a pure decision.

Three rules, applied in this order:

1. **Priority wins.** Only jobs of the highest priority a free lane can take are considered.
2. **Weighted fair queuing between owners** (start-time fair queuing, as in a CFS run queue). Every owner has a
   virtual time ``vtime``; a dispatch charges it ``1 / weight``. The *base order* interleaves owners by their
   start tag ``max(vtime, clock)`` (ties: the older job), each owner's own jobs oldest first. ``clock`` is the
   smallest start tag of a backlogged owner, kept monotone, so an owner coming back after a pause starts level
   with the others instead of spending credit it saved up while idle. With one owner the base order is FIFO.
3. **Model affinity within a bounded wait.** Loading a checkpoint or a LoRA set costs seconds on a GPU, so a lane
   prefers the first job in base order whose ``affinity_key`` it has loaded, passing over the jobs ahead of it.
   A job passed over is marked; its deadline is ``affinity_max_wait_s`` after its first pass (FIFO would have
   started it then). A pass is made only if, with the lane busy for the expected run, every marked job could
   still start by its deadline running one after another in deadline order (each counted with a model load);
   and when a choice would make that impossible, the marked job with the nearest deadline runs instead -- even
   before a job of a higher priority that came since (it was due first). With estimates that hold, no job waits
   more than ``affinity_max_wait_s`` past the moment the base order would have started it.

Owner concurrency caps (``owner_max_running``) leave out the jobs of owners at their cap.

The decision is one function over plain values, so it is tested alone (a property test over random queues
checks the FIFO + ``max_wait_s`` bound) and the database only has to read a snapshot and apply the result; see
:mod:`orchestrator.jobs.claims` for why it is not one SQL statement.
"""

from __future__ import annotations

import heapq
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """A queued job as the scheduler sees it."""

    id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    priority: int
    #: When it was queued (epoch seconds): FIFO order within a priority and owner.
    created_at: float
    #: What the job needs loaded (checkpoint + LoRA set), None when it needs nothing.
    affinity_key: str | None = None
    #: When a job behind it was first dispatched ahead of it for affinity (epoch seconds), None if never.
    passed_over_at: float | None = None


@dataclass(frozen=True, slots=True)
class Lane:
    """A free place to run one job: a backend that can take a prompt now, or a worker slot."""

    name: str
    kinds: frozenset[str]
    #: What the backend will have loaded when this job starts (the model of its last prompt).
    loaded_key: str | None = None
    #: Jobs already running or queued on it.
    load: int = 0


@dataclass(frozen=True, slots=True)
class OwnerShare:
    """An owner's fair-share state."""

    vtime: float = 0.0
    weight: float = 1.0
    running: int = 0


@dataclass(frozen=True, slots=True)
class Policy:
    """The knobs (from Settings) plus what the worker has learnt about run times."""

    #: False: strictly priority then age, no owner fairness, no affinity (the old behaviour; for comparison).
    fair: bool = True
    #: The most a job may wait beyond FIFO so that others can reuse a loaded model; 0 = no affinity.
    affinity_max_wait_s: float = 30.0
    #: Most running jobs per owner; 0 = no cap.
    owner_max_running: int = 0
    #: Expected run time per kind (seconds) of a job that needs no model load; unknown kinds count 0.
    expected_run_s: Mapping[str, float] = field(default_factory=dict)
    #: Expected extra time of a run that has to load its model first.
    expected_load_s: float = 0.0
    #: How far down the base order affinity looks for a job matching a lane.
    lookahead: int = 64


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The decision: run ``job`` on ``lane``."""

    job: QueuedJob
    lane: Lane
    #: Jobs ahead of it in the base order, passed over for the first time, in that order: they are marked with
    #: ``now`` plus a microsecond per position, so that their deadlines keep the order they were due in.
    passed_over: tuple[uuid.UUID, ...]
    #: The owner's virtual time after this dispatch.
    owner_vtime: float
    #: The fair clock after this dispatch (monotone).
    clock: float


def base_order(
    jobs: Iterable[QueuedJob], shares: Mapping[uuid.UUID, OwnerShare], clock: float, *, fair: bool = True
) -> list[QueuedJob]:
    """The order jobs of one priority level would run in without affinity (see the module docstring)."""
    by_owner: dict[uuid.UUID, list[QueuedJob]] = {}
    for job in sorted(jobs, key=lambda j: (j.created_at, j.id)):
        by_owner.setdefault(job.owner_id if fair else uuid.UUID(int=0), []).append(job)
    heap: list[tuple[float, float, uuid.UUID, uuid.UUID]] = []
    for owner, queue in by_owner.items():
        start = max(shares.get(owner, OwnerShare()).vtime, clock) if fair else 0.0
        heap.append((start, queue[0].created_at, queue[0].id, owner))
    heapq.heapify(heap)
    positions = dict.fromkeys(by_owner, 0)
    order: list[QueuedJob] = []
    while heap:
        start, _, _, owner = heapq.heappop(heap)
        queue = by_owner[owner]
        order.append(queue[positions[owner]])
        positions[owner] += 1
        if positions[owner] < len(queue):
            following = queue[positions[owner]]
            step = 1.0 / shares.get(owner, OwnerShare()).weight if fair else 0.0
            heapq.heappush(heap, (start + step, following.created_at, following.id, owner))
    return order


def start_tag(owner: uuid.UUID, shares: Mapping[uuid.UUID, OwnerShare], clock: float) -> float:
    """Where the owner's next job starts in virtual time."""
    return max(shares.get(owner, OwnerShare()).vtime, clock)


def choose(
    queue: Sequence[QueuedJob],
    lanes: Sequence[Lane],
    shares: Mapping[uuid.UUID, OwnerShare],
    clock: float,
    now: float,
    policy: Policy,
) -> Dispatch | None:
    """The next dispatch, or None when no free lane can take any queued job."""
    cap = policy.owner_max_running
    best: tuple[tuple[int, float], Dispatch] | None = None
    for group in _lane_groups(lanes):
        kinds = group[0].kinds
        jobs = [
            j for j in queue if j.kind in kinds and (cap <= 0 or shares.get(j.owner_id, OwnerShare()).running < cap)
        ]
        if not jobs:
            continue
        top = max(j.priority for j in jobs)
        level = [j for j in jobs if j.priority == top]
        order = base_order(level, shares, clock, fair=policy.fair)
        marked = [j for j in jobs if j.passed_over_at is not None]
        job, lane, passed = _pick(order, marked, group, now, policy)
        rank = (-job.priority, job.created_at)
        if best is None or rank < best[0]:
            best = (rank, _dispatch(job, lane, passed, level, shares, clock, policy))
    return best[1] if best else None


def _lane_groups(lanes: Sequence[Lane]) -> list[list[Lane]]:
    groups: dict[frozenset[str], list[Lane]] = {}
    for lane in lanes:
        groups.setdefault(lane.kinds, []).append(lane)
    return list(groups.values())


def _pick(
    order: list[QueuedJob], marked: list[QueuedJob], lanes: list[Lane], now: float, policy: Policy
) -> tuple[QueuedJob, Lane, list[QueuedJob]]:
    """The job and lane for one group of equivalent lanes, and the jobs the choice passes over.

    ``marked`` are the group's jobs passed over before, of any priority (see the module docstring, rule 3)."""
    head = order[0]
    window = order[: max(policy.lookahead, 1)]
    if not policy.fair or policy.affinity_max_wait_s <= 0:
        return head, _lane_for(head, lanes, window), []
    picked = _affine_pick(window, marked, lanes, now, policy) or (head, _lane_for(head, lanes, window), [])
    job, lane, _ = picked
    waiting = [j for j in marked if j.id != job.id]
    if not marked or _feasible(waiting, job, _busy_until(job, lane, now, policy), now, policy):
        return picked
    urgent = min(marked, key=lambda j: (_deadline(j, now, policy), j.created_at))
    if urgent.id == job.id:
        return picked
    return urgent, _lane_for(urgent, lanes, window), []


def _lane_for(job: QueuedJob, lanes: list[Lane], window: list[QueuedJob]) -> Lane:
    """The least loaded lane, counting one that has the job's model loaded as one job less loaded (and
    preferring it on ties); then the lane whose loaded model the fewest queued jobs want."""
    demand = Counter(j.affinity_key for j in window if j.affinity_key is not None)

    def score(item: tuple[int, Lane]) -> tuple[int, int, int, int, int]:
        index, lane = item
        affine = job.affinity_key is not None and lane.loaded_key == job.affinity_key
        wanted = demand[lane.loaded_key] if lane.loaded_key is not None else -1
        return (lane.load - (1 if affine else 0), 0 if affine else 1, lane.load, wanted, index)

    return min(enumerate(lanes), key=score)[1]


def _affine_pick(
    window: list[QueuedJob], marked: list[QueuedJob], lanes: list[Lane], now: float, policy: Policy
) -> tuple[QueuedJob, Lane, list[QueuedJob]] | None:
    """The earliest job in the window that a lane has its model for (the head itself when a lane has its model),
    if passing over the jobs ahead of it keeps every deadline."""
    for position, job in enumerate(window):
        for lane in lanes:
            if job.affinity_key is None or lane.loaded_key != job.affinity_key:
                continue
            passed = window[:position]
            waiting = {j.id: j for j in [*marked, *passed] if j.id != job.id}
            if _feasible(list(waiting.values()), job, _busy_until(job, lane, now, policy), now, policy):
                return job, lane, passed
            return None
    return None


def _feasible(waiting: list[QueuedJob], after: QueuedJob, free_at: float, now: float, policy: Policy) -> bool:
    """Whether the waiting jobs, run one after another in deadline order on the lane once ``after`` has run there
    (from ``free_at``), all start by their deadlines; a job counts a model load unless the one before it used
    the same model."""
    start, loaded = free_at, after.affinity_key
    for job in sorted(waiting, key=lambda j: _deadline(j, now, policy)):
        if start > _deadline(job, now, policy):
            return False
        load = policy.expected_load_s if job.affinity_key is None or job.affinity_key != loaded else 0.0
        start += policy.expected_run_s.get(job.kind, 0.0) + load
        loaded = job.affinity_key
    return True


def _busy_until(job: QueuedJob, lane: Lane, now: float, policy: Policy) -> float:
    """When the lane is expected to be free again if ``job`` runs there now."""
    load = policy.expected_load_s if job.affinity_key is not None and lane.loaded_key != job.affinity_key else 0.0
    return now + policy.expected_run_s.get(job.kind, 0.0) + load


def _deadline(job: QueuedJob, now: float, policy: Policy) -> float:
    first = job.passed_over_at if job.passed_over_at is not None else now
    return first + policy.affinity_max_wait_s


def _dispatch(
    job: QueuedJob,
    lane: Lane,
    passed: list[QueuedJob],
    level: list[QueuedJob],
    shares: Mapping[uuid.UUID, OwnerShare],
    clock: float,
    policy: Policy,
) -> Dispatch:
    share = shares.get(job.owner_id, OwnerShare())
    start = start_tag(job.owner_id, shares, clock)
    owners = {j.owner_id for j in level}
    new_clock = max(clock, min(start_tag(owner, shares, clock) for owner in owners)) if policy.fair else clock
    return Dispatch(
        job=job,
        lane=lane,
        passed_over=tuple(j.id for j in passed if j.passed_over_at is None),
        owner_vtime=start + 1.0 / share.weight,
        clock=new_clock,
    )
