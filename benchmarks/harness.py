"""Shared plumbing for benchmarks: a scratch database and the service as a subprocess."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.api.auth import issue_key
from orchestrator.db.engine import asyncpg_dsn, create_engine, migrate
from tests.support.service import free_port, spawn_atelier, wait_until_answering, wait_until_healthy
from tests.support.sse import iter_sse

#: The events that end a job.
TERMINAL_EVENTS = frozenset({"job.succeeded", "job.failed", "job.cancelled"})

SERVER_URL = os.environ.get("ATELIER_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class RunningService:
    """A service subprocess and how to reach it."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    headers: dict[str, str]


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A migrated database that is dropped afterwards."""
    name = f"atelier_bench_{uuid.uuid4().hex[:8]}"
    url = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    await migrate(url)
    try:
        yield url
    finally:
        conn = await asyncpg.connect(asyncpg_dsn(SERVER_URL))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def service(
    env: Mapping[str, str] | None = None, *, adult_content: bool = False
) -> AsyncIterator[RunningService]:
    """`atelier serve` on a scratch database with an API key for one owner (``adult_content``: the key's flag)."""
    async with scratch_database() as database_url:
        engine = create_engine(database_url, pool_size=1)
        key = await issue_key(engine, "bench", adult_content=adult_content)
        await engine.dispose()
        port = free_port()
        log = Path(tempfile.mkdtemp(prefix="atelier-bench-")) / "service.log"
        full_env = {
            "ATELIER_DATABASE_URL": database_url,
            "ATELIER_PORT": str(port),
            "ATELIER_LOG_LEVEL": "WARNING",
            **(env or {}),
        }
        process = spawn_atelier(["serve"], full_env, log)
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_healthy(url, process)
            yield RunningService(url, database_url, process, {"Authorization": f"Bearer {key.secret}"})
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 30)


async def wait_for_comfyui(url: str, timeout_s: float = 30.0) -> None:
    """Return once a (stand-in) ComfyUI just started at ``url`` answers ``/system_stats``."""
    await wait_until_answering(f"{url}/system_stats", name="ComfyUI", timeout_s=timeout_s)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile (nearest rank)."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summary_ms(values: Sequence[float]) -> str:
    """p50/p99/max in milliseconds."""
    return (
        f"p50 {statistics.median(values) * 1000:.1f} ms, p99 {percentile(values, 99) * 1000:.1f} ms, "
        f"max {max(values) * 1000:.1f} ms"
    )


class JobEnds:
    """Job ends seen on owners' ``GET /v1/events`` streams: per job id, when (``clock``) and how it ended."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.at: dict[str, tuple[float, str]] = {}
        self._clock = clock
        self._changed = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    async def follow(self, http: aiohttp.ClientSession, url: str, headers: Mapping[str, str]) -> None:
        """Start reading one owner's event stream (open until :meth:`close`)."""
        timeout = aiohttp.ClientTimeout(total=None)
        response = await http.get(f"{url}/v1/events", headers=dict(headers), timeout=timeout)
        if response.status != 200:
            raise RuntimeError(f"GET /v1/events answered {response.status}")
        self._readers.append(asyncio.create_task(self._read(response)))

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        async for event in iter_sse(response):
            if event.event in TERMINAL_EVENTS:
                self.at[str(event.data["job_id"])] = (self._clock(), event.event)
                self._changed.set()

    async def wait_for(self, ids: Iterable[str], timeout_s: float) -> None:
        """Until every one of ``ids`` has ended; raises if one did not succeed."""
        wanted = set(ids)
        async with asyncio.timeout(timeout_s):
            while not wanted <= self.at.keys():
                self._changed.clear()
                await self._changed.wait()
        failed = [f"{i} ({self.at[i][1]})" for i in wanted if self.at[i][1] != "job.succeeded"]
        if failed:
            raise RuntimeError(f"{len(failed)} jobs did not succeed, e.g. {failed[0]}")

    async def close(self) -> None:
        """Stop reading."""
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
