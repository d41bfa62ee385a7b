"""A discrete-event model of backends running a queue, for checking the scheduler's decisions.

Each backend (lane) runs one job at a time. A job takes ``run_s``, plus ``load_s`` when the backend last ran
another model (affinity key). The scheduler state a database would keep -- owners' virtual times, the fair
clock and the passed-over marks -- is kept here and updated from every :class:`Dispatch` the same way.
"""

from __future__ import annotations

import heapq
import uuid
from dataclasses import dataclass, field, replace

from orchestrator.jobs.scheduling import Lane, OwnerShare, Policy, QueuedJob, choose


@dataclass(frozen=True)
class SimJob:
    """A job of the model: when it arrives, whose it is, what it needs and how long it runs."""

    arrive_s: float
    owner: int
    key: str
    run_s: float
    priority: int = 0
    #: Its id (also the last tie-break of the order): give each job its own.
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class Outcome:
    """What happened: per job id, when it started; how many model loads; when the last job ended."""

    started: dict[uuid.UUID, float]
    loads: int
    makespan_s: float
    #: When each job that was passed over was passed over first.
    passed_over: dict[uuid.UUID, float]

    def wait(self, job: SimJob) -> float:
        """How long the job waited from arrival to start."""
        return self.started[job.id] - job.arrive_s


#: Jobs passed over together are marked this far apart, in the order they were in (as the database does).
MARK_STEP_S = 1e-6


def owner_uuid(owner: int) -> uuid.UUID:
    """A stable owner id for the model's small owner numbers."""
    return uuid.UUID(int=owner + 1)


def simulate(
    jobs: list[SimJob],
    *,
    lanes: int,
    load_s: float,
    policy: Policy,
    weights: dict[int, float] | None = None,
) -> Outcome:
    """Run the jobs on ``lanes`` backends with ``policy``; every backend starts with nothing loaded."""
    pending = sorted(jobs, key=lambda j: j.arrive_s)
    spec = {j.id: j for j in jobs}
    queue: dict[uuid.UUID, QueuedJob] = {}
    shares = {owner_uuid(o): OwnerShare(weight=w) for o, w in (weights or {}).items()}
    clock = 0.0
    loaded: list[str | None] = [None] * lanes
    free_at = [0.0] * lanes
    running: list[tuple[float, int, uuid.UUID]] = []  # (end, lane, job id)
    started: dict[uuid.UUID, float] = {}
    first_passed: dict[uuid.UUID, float] = {}
    loads, now, makespan = 0, 0.0, 0.0
    kinds = frozenset({"generation"})
    while True:
        while pending and pending[0].arrive_s <= now:
            job = pending.pop(0)
            queue[job.id] = QueuedJob(job.id, owner_uuid(job.owner), "generation", job.priority, job.arrive_s, job.key)
        while running and running[0][0] <= now:
            _, _, job_id = heapq.heappop(running)
            owner = owner_uuid(spec[job_id].owner)
            shares[owner] = replace(shares[owner], running=shares[owner].running - 1)
        free = [Lane(str(i), kinds, loaded[i]) for i in range(lanes) if free_at[i] <= now]
        dispatch = choose(list(queue.values()), free, shares, clock, now, policy) if free and queue else None
        if dispatch is None:
            upcoming = [t for t in (pending[0].arrive_s if pending else None, running[0][0] if running else None)]
            if all(t is None for t in upcoming):
                break
            now = min(t for t in upcoming if t is not None)
            continue
        index = int(dispatch.lane.name)
        job = spec[dispatch.job.id]
        del queue[job.id]
        for position, passed in enumerate(dispatch.passed_over):
            queue[passed] = replace(queue[passed], passed_over_at=now + position * MARK_STEP_S)
            first_passed.setdefault(passed, now)
        owner = owner_uuid(job.owner)
        share = shares.get(owner, OwnerShare())
        shares[owner] = replace(share, vtime=dispatch.owner_vtime, running=share.running + 1)
        clock = dispatch.clock
        cost = job.run_s + (load_s if loaded[index] != job.key else 0.0)
        loads += loaded[index] != job.key
        loaded[index] = job.key
        started[job.id] = now
        free_at[index] = now + cost
        makespan = max(makespan, now + cost)
        heapq.heappush(running, (now + cost, index, job.id))
    if queue:
        raise RuntimeError(f"{len(queue)} jobs never ran")
    return Outcome(started, loads, makespan, first_passed)
