# SPDX-License-Identifier: Apache-2.0
"""What a durable commit costs this machine after the event loop sat idle for a while, the way a job's end
finds it: a generation's success statement comes tens of milliseconds (or seconds) after the job's last
write, not right after another commit.

Each round waits ``gap`` milliseconds, then times one round trip on a warm asyncpg connection: a read
(``SELECT 1``: the wake-up of the server's process and the way back) and a one-row insert that commits (the
same plus a WAL flush). Prints medians and 90th percentiles per gap, and the ratio against back-to-back
round trips. On the 2-vCPU VM this project is measured on, the commit after 50 ms of quiet cost several times
the back-to-back one; the overhead benchmark's job ends pay it once per job.

    python -m benchmarks.bench_commit_latency [--rounds 60] [--gaps 0,2,20,50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from benchmarks.harness import scratch_database
from orchestrator.db.engine import asyncpg_dsn


async def _timed(conn: asyncpg.Connection, statement: str, gap_s: float, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        if gap_s:
            await asyncio.sleep(gap_s)  # the quiet being measured, not synchronisation
        started = time.perf_counter()
        await conn.fetch(statement)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _line(name: str, gap_ms: float, times: list[float], base: float) -> str:
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10)[-1]
    return (
        f"  {name:6} after {gap_ms:5.0f} ms quiet: median {median:6.3f} ms, p90 {p90:6.3f} ms ({median / base:4.1f}x)"
    )


async def main(args: argparse.Namespace) -> None:
    gaps = [float(g) for g in args.gaps.split(",")]
    async with scratch_database() as url:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute("CREATE TABLE commit_probe (n int, at timestamptz DEFAULT now())")
            statements = {"read": "SELECT 1", "commit": "INSERT INTO commit_probe (n) VALUES (1) RETURNING at"}
            await _timed(conn, statements["commit"], 0, 20)  # warm the connection and the statement cache
            bases = {
                name: statistics.median(await _timed(conn, sql, 0, args.rounds)) for name, sql in statements.items()
            }
            print(f"round trips on one asyncpg connection, {args.rounds} per line (back-to-back = 1.0x)")
            for gap_ms in gaps:
                for name, sql in statements.items():
                    print(_line(name, gap_ms, await _timed(conn, sql, gap_ms / 1000, args.rounds), bases[name]))
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60, help="round trips per gap and statement")
    parser.add_argument("--gaps", default="0,2,20,50,200", help="quiet before each round trip, ms (comma-separated)")
    asyncio.run(main(parser.parse_args()))
