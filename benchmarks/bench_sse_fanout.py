"""SSE fan-out: N subscribers to one job's events; delivery latency and server memory per subscriber.

The service (API, worker off) runs as one process; the subscribers live in a second process
(this one) as bare asyncio protocols that only timestamp what arrives. Once all are connected, a
separate `atelier worker` process runs the job: a noop with progress events every 250 ms (after a
short warm-up job, so the figures are those of a running worker, not of its first statements).
Latency = arrival time at the subscriber - the event's commit-side timestamp (``at``, the
database's clock; same machine). It includes the subscriber process's own reading time; that
process's cyclic garbage collector is off while it measures (it is the measuring instrument, and its
pauses would otherwise show up as late events). The service's own collector stays on.

    python -m benchmarks.bench_sse_fanout [--subscribers 1000 5000] [--steps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import uvloop

from benchmarks.harness import percentile, rss_bytes, service
from tests.support.service import spawn_atelier

FRAME = re.compile(rb"id: (\d+)\nevent: ([\w.]+)\ndata: (\{[^\n]*\})\n")


class Subscriber(asyncio.Protocol):
    """One SSE connection that records (arrival time, bytes) and nothing else."""

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.chunks: list[tuple[float, bytes]] = []
        self.subscribed: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence no isinstance check
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.time(), data))
        if b"event: job.queued" in data and not self.subscribed.done():
            self.subscribed.set_result(None)
        if b"event: job.succeeded" in data and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.subscribed, self.done):
            if not future.done():
                future.set_result(None)

    def arrivals(self) -> dict[int, tuple[float, float, str]]:
        """event id -> (arrival, event timestamp, event type)."""
        out: dict[int, tuple[float, float, str]] = {}
        buffer = b"".join(c for _, c in self.chunks)
        # map each frame to the arrival time of the chunk holding its end
        ends, offset = [], 0
        for arrived, chunk in self.chunks:
            offset += len(chunk)
            ends.append((offset, arrived))
        for match in FRAME.finditer(buffer):
            arrived = next(a for end, a in ends if end >= match.end())
            stamp = datetime.fromisoformat(json.loads(match.group(3))["at"]).timestamp()
            out[int(match.group(1))] = (arrived, stamp, match.group(2).decode())
        return out


async def _connect_all(url: str, path: str, headers: dict[str, str], count: int) -> list[Subscriber]:
    parts = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n{head}\r\n".encode()
    loop = asyncio.get_running_loop()
    subscribers: list[Subscriber] = []
    for batch in range(0, count, 250):
        made = [Subscriber(request, loop) for _ in range(min(250, count - batch))]
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        await asyncio.gather(*(loop.create_connection(lambda s=s: s, host, port) for s in made))  # type: ignore[misc]
        subscribers.extend(made)
    return subscribers


async def run(count: int, steps: int) -> None:
    async with service({"ATELIER_WORKER_ENABLED": "false"}) as svc, aiohttp.ClientSession() as http:
        # A short, more urgent job runs first, so the measured one starts in a worker that is warm.
        warm_up = {"kind": "noop", "payload": {"steps": 3, "step_ms": 50}, "priority": 10}
        async with http.post(f"{svc.url}/v1/jobs", json=warm_up, headers=svc.headers) as response:
            assert response.status == 202
        body = {"kind": "noop", "payload": {"steps": steps, "step_ms": 250}}
        async with http.post(f"{svc.url}/v1/jobs", json=body, headers=svc.headers) as response:
            job_id = (await response.json())["id"]
        rss_before = rss_bytes(svc.process.pid)
        subscribers = await _connect_all(svc.url, f"/v1/jobs/{job_id}/events", svc.headers, count)
        async with asyncio.timeout(120):  # each has the replayed job.queued, so it is live
            await asyncio.gather(*(s.subscribed for s in subscribers))
        rss_after = rss_bytes(svc.process.pid)
        log = Path(tempfile.mkdtemp(prefix="atelier-bench-")) / "worker.log"
        worker_env = {"ATELIER_DATABASE_URL": svc.database_url, "ATELIER_WORKER_CONCURRENCY": "1"}
        worker = spawn_atelier(["worker", "--kinds", "noop"], worker_env, log)
        try:
            async with asyncio.timeout(steps * 0.25 + 120):
                await asyncio.gather(*(s.done for s in subscribers))
        finally:
            worker.terminate()
            await asyncio.to_thread(worker.wait, 30)
        async with http.get(f"{svc.url}/metrics") as response:
            fanout = _fanout_seconds(await response.text())
        for s in subscribers:
            assert s.transport is not None
            s.transport.close()
    _report(count, subscribers, rss_before, rss_after)
    print(f"server-side fan-out per released batch: {fanout}")


def _fanout_seconds(metrics_text: str) -> str:
    values = {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in metrics_text.splitlines())
        if name.endswith(("_sum", "_count"))
    }

    def mean_ms(metric: str) -> float:
        return values[f"{metric}_sum"] / values[f"{metric}_count"] * 1000

    lag, sweep = mean_ms("atelier_event_release_lag_seconds"), mean_ms("atelier_sse_fanout_seconds")
    return (
        f"commit->release {lag:.1f} ms + write to all sockets {sweep:.1f} ms (mean per batch) = "
        f"every subscriber handed its bytes within ~{lag + sweep:.0f} ms"
    )


def _report(count: int, subscribers: list[Subscriber], rss_before: int, rss_after: int) -> None:
    per_event: dict[int, list[float]] = {}
    kinds: dict[int, str] = {}
    for s in subscribers:
        for event_id, (arrived, stamp, kind) in s.arrivals().items():
            per_event.setdefault(event_id, []).append(arrived - stamp)
            kinds[event_id] = kind
    live = {eid: lat for eid, lat in per_event.items() if eid != min(per_event)}  # skip the replayed job.queued
    complete = sum(len(lat) == count for lat in live.values())
    latencies = [x for lat in live.values() for x in lat]
    print(f"--- {count} subscribers to one job, {len(live)} live events each ---")
    print(f"events delivered to every subscriber: {complete}/{len(live)}")
    print(
        f"delivery latency: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms (target p99 <= 100 ms)"
    )
    slowest = sorted(live, key=lambda eid: statistics.median(live[eid]), reverse=True)[:3]
    described = [f"#{eid} {kinds[eid]} {statistics.median(live[eid]) * 1000:.0f} ms" for eid in slowest]
    print("slowest events (median over subscribers): " + ", ".join(described))
    print(
        f"server RSS: {rss_before / 2**20:.0f} MiB -> {rss_after / 2**20:.0f} MiB, "
        f"{(rss_after - rss_before) / count / 1024:.1f} KiB per subscriber"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    for n in args.subscribers:
        # uvloop in the subscriber process too, so its own reading adds less to the measured latency
        gc.disable()
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(n, args.steps))
        gc.enable()
        gc.collect()
