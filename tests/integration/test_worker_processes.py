"""Workers as separate processes: exclusive claims, and recovery from a kill -9 mid-job."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from orchestrator.db.engine import asyncpg_dsn, create_engine
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.store import JobStore
from tests.support.db import wait_for_listeners, wait_for_terminal
from tests.support.service import free_port, running_owner, spawn_atelier, wait_until_healthy
from tests.support.sse import SseEvent, iter_sse

pytestmark = pytest.mark.slow

QUICK_HEARTBEATS = {
    "ATELIER_HEARTBEAT_INTERVAL_S": "0.2",
    "ATELIER_HEARTBEAT_TIMEOUT_S": "1.5",
    "ATELIER_IDLE_POLL_S": "0.5",
    "ATELIER_AUTH": "disabled",
    "ATELIER_LOG_LEVEL": "WARNING",
}


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


async def _events_by_job(database_url: str) -> dict[uuid.UUID, list[tuple[int, str, dict[str, object]]]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch("SELECT id, job_id, type, data::text AS data FROM job_events ORDER BY id")
    finally:
        await conn.close()
    out: dict[uuid.UUID, list[tuple[int, str, dict[str, object]]]] = {}
    for row in rows:
        out.setdefault(row["job_id"], []).append((row["id"], row["type"], json.loads(row["data"])))
    return out


async def test_two_worker_processes_run_each_of_500_jobs_exactly_once(fresh_database_url: str, tmp_path: Path) -> None:
    env = {**QUICK_HEARTBEATS, "ATELIER_DATABASE_URL": fresh_database_url, "ATELIER_WORKER_CONCURRENCY": "8"}
    workers = [spawn_atelier(["worker", "--kinds", "noop"], env, tmp_path / f"w{i}.log") for i in range(2)]
    engine = create_engine(fresh_database_url, pool_size=4)
    store = JobStore(engine)
    try:
        # both processes up before the first job, or a slow start lets the other run all 500
        await wait_for_listeners(fresh_database_url, 2)
        owner = await running_owner(engine)
        # 20 ms a job: one process's 8 lanes cannot drain the queue alone, so the other always has work to claim
        # (with instant jobs whichever process reacts first can win every race: 0 of 500 for the other in CI)
        jobs = [NewJob(owner_id=owner, kind="noop", payload={"steps": 1, "step_ms": 20}) for _ in range(500)]
        for chunk in range(0, 500, 50):
            await asyncio.gather(*(store.create(job) for job in jobs[chunk : chunk + 50]))
        await wait_for_terminal(fresh_database_url, [j.id for j in jobs], timeout_s=120)
    finally:
        await store.close()
        await engine.dispose()
        codes = [_stop(w) for w in workers]
    assert codes == [0, 0], [(tmp_path / f"w{i}.log").read_text()[-2000:] for i in range(2)]
    events = await _events_by_job(fresh_database_url)
    runners: Counter[str] = Counter()
    for job in jobs:
        types = [t for _, t, _ in events[job.id]]
        assert types == ["job.queued", "job.started", "job.progress", "job.succeeded"], types
        runners[str(events[job.id][1][2]["worker"])] += 1
    assert len(runners) == 2, f"both processes should have claimed work: {runners}"
    # a process that loses the race for the head job moves past it and soon tries again, not after the idle poll:
    # before, the lesser process got 14 of 500 here and 0 in CI; then 224-250 in seven runs, but 39 once in CI (its
    # waits after losing doubled up to the idle poll, which a run of losses reaches in about a second); with those
    # waits bounded at 50 ms, 212-247 for the lesser in ten runs here (three quiet, three beside six busy processes,
    # four beside a pgbench load; the 39 did not recur here before the bound either: 185-238 in ten such runs)
    assert min(runners.values()) >= 50, f"one process sat idle beside a full queue: {runners}"


async def _read_until(response: aiohttp.ClientResponse, seen: list[SseEvent], progress_events: int) -> None:
    async for event in iter_sse(response):
        seen.append(event)
        if sum(e.event == "job.progress" for e in seen) >= progress_events:
            return


async def test_kill_9_mid_job_loses_nothing_and_the_job_ends_true(fresh_database_url: str, tmp_path: Path) -> None:
    port_a, port_b = free_port(), free_port()
    env = {**QUICK_HEARTBEATS, "ATELIER_DATABASE_URL": fresh_database_url, "ATELIER_WORKER_CONCURRENCY": "1"}
    first = spawn_atelier(["serve"], {**env, "ATELIER_PORT": str(port_a)}, tmp_path / "a.log")
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    seen: list[SseEvent] = []
    accepted: list[uuid.UUID] = []
    second = None
    try:
        await wait_until_healthy(url_a, first)
        async with aiohttp.ClientSession() as http:
            for steps in (30, 2, 2):  # one long job running, two waiting behind it
                async with http.post(
                    f"{url_a}/v1/jobs", json={"kind": "noop", "payload": {"steps": steps, "step_ms": 100}}
                ) as response:
                    assert response.status == 202
                    accepted.append(uuid.UUID((await response.json())["id"]))
            async with http.get(f"{url_a}/v1/jobs/{accepted[0]}/events") as stream:
                await _read_until(stream, seen, progress_events=3)
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            second = spawn_atelier(["serve"], {**env, "ATELIER_PORT": str(port_b)}, tmp_path / "b.log")
            await wait_until_healthy(url_b, second)
            headers = {"Last-Event-ID": str(seen[-1].id)}
            async with http.get(f"{url_b}/v1/jobs/{accepted[0]}/events", headers=headers) as stream:
                async with asyncio.timeout(60):
                    seen.extend([e async for e in iter_sse(stream)])
        await wait_for_terminal(fresh_database_url, accepted, timeout_s=60)
    finally:
        if first.poll() is None:
            first.kill()
        if second is not None:
            assert _stop(second) == 0
    events = await _events_by_job(fresh_database_url)
    stored = events[accepted[0]]
    assert [e.id for e in seen] == [event_id for event_id, _, _ in stored], "the client saw exactly the log"
    types = [t for _, t, _ in stored]
    assert types[:2] == ["job.queued", "job.started"]
    assert "job.retrying" in types
    assert types[-1] == "job.succeeded"
    assert types.count("job.started") == 2
    for job_id in accepted:
        assert events[job_id][-1][1] == "job.succeeded"
