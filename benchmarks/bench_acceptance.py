"""Job acceptance rate: POST /v1/jobs -> 202 after the job row and its job.queued event commit.

The service runs as its own process with the worker off (acceptance only), API keys on.
The load generator is a separate process (this one) with a fixed number of connections.

    python -m benchmarks.bench_acceptance [--jobs 6000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
import asyncpg

from benchmarks.harness import percentile, service
from orchestrator.db.engine import asyncpg_dsn

BODY = b'{"kind": "noop", "payload": {"steps": 1}}'


async def _load(url: str, headers: dict[str, str], jobs: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    remaining = iter(range(jobs))
    headers = {**headers, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            for _ in remaining:
                started = time.perf_counter()
                async with http.post(f"{url}/v1/jobs", data=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"unexpected {response.status}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


async def main(jobs: int, concurrency: int) -> None:
    env = {"ATELIER_WORKER_ENABLED": "false", "ATELIER_DB_POOL_SIZE": "16"}
    async with service(env) as svc:
        await _load(svc.url, svc.headers, 300, concurrency)  # warm up connections, caches, plans
        started = time.perf_counter()
        latencies = await _load(svc.url, svc.headers, jobs, concurrency)
        elapsed = time.perf_counter() - started
        conn = await asyncpg.connect(asyncpg_dsn(svc.database_url))
        queued = await conn.fetchval("SELECT count(*) FROM job_events WHERE type = 'job.queued'")
        await conn.close()
    print(f"accepted {jobs} jobs in {elapsed:.2f} s with {concurrency} connections")
    print(f"acceptance rate: {jobs / elapsed:,.0f} jobs/s (target >= 1,500)")
    print(f"latency: p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms")
    print(f"job.queued events on record: {queued} (expected {jobs + 300})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.concurrency))
