"""Job submission while SSE clients follow: is every POST answered, and how fast?

The service (`atelier serve`: API and worker in one process) runs on a scratch database. A separate
process (so the load generator's own work is not on this process's loop) opens ``--sse`` connections to
``/v1/events``, spread over two owners, as bare asyncio protocols that only count what arrives. Once all
are connected, this process sends ``--submits`` concurrent ``POST /v1/jobs`` (noop jobs: each writes
queued, started, three progress and a succeeded event, every one of them fanned out to the owner's
subscribers) and times each answer, with ``--timeout`` seconds per request. The same burst runs first
with one subscriber per owner (no fan-out), then with the full fan-out, each on a fresh service.

    python -m benchmarks.bench_submit_under_fanout [--sse 2000] [--submits 1000] [--timeout 30]
        [--profile DIR]  (py-spy on the service during each burst, when py-spy is on PATH)

Prints, per run: answered ratio, p50/p99/max submit latency as the client saw it, the handler's own
latency (the service's metrics), the fan-out rounds and their time, the time until every job had ended and
what the subscribers received; then the ratio of the p99s. Load generator and service share the
machine's cores; on a 2-core machine the followers' reading competes with the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import uvloop

from benchmarks.harness import percentile, service
from orchestrator.api.auth import issue_key
from orchestrator.db.engine import create_engine
from tests.support.db import wait_for_terminal


class Follower(asyncio.Protocol):
    """One SSE connection that counts events and bytes; ``ready`` once the response headers came."""

    def __init__(self, request: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.ready: asyncio.Future[bool] = loop.create_future()
        self.events = 0
        self.bytes = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.ready.set_result(data.startswith(b"HTTP/1.1 200"))
        self.bytes += len(data)
        self.events += data.count(b"\nevent: ")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_result(False)


async def follow(url: str, keys: list[str], count: int) -> None:
    """The follower process: connect ``count`` clients (round-robin over ``keys``), say so, read until stdin ends."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    followers: list[Follower] = []
    for index in range(count):
        request = (
            f"GET /v1/events HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {keys[index % len(keys)]}\r\n\r\n"
        ).encode()
        followers.append(Follower(request, loop))
    for start in range(0, count, 200):
        batch = followers[start : start + 200]
        await asyncio.gather(*(loop.create_connection(lambda f=f: f, host, port) for f in batch))  # type: ignore[misc]
        if not all(await asyncio.gather(*(f.ready for f in batch))):
            raise SystemExit("a follower was refused")
    print(json.dumps({"connected": count}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    counts = {
        "events": sum(f.events for f in followers),
        "bytes": sum(f.bytes for f in followers),
        "dropped": sum(f.lost for f in followers),
    }
    print(json.dumps(counts))


@dataclass
class BurstResult:
    """What one burst of submits measured."""

    followers: int
    answered: int
    statuses: dict[str, int]
    latencies: list[float]
    all_done_s: float
    received_events: int
    dropped: int
    server_side: str

    def report(self, submits: int) -> str:
        lat = self.latencies or [float("nan")]
        return (
            f"{self.followers:>5} SSE followers: answered {self.answered}/{submits} "
            f"({self.answered / submits:.1%}), statuses {self.statuses}; submit latency p50 "
            f"{percentile(lat, 50) * 1000:.0f} ms, p99 {percentile(lat, 99) * 1000:.0f} ms, "
            f"max {max(lat) * 1000:.0f} ms; every job ended {self.all_done_s:.1f} s after the burst began; "
            f"followers received {self.received_events:,} events, {self.dropped} followers were disconnected; "
            f"{self.server_side}"
        )


async def _submit(http: aiohttp.ClientSession, url: str, key: str, timeout_s: float) -> tuple[str, float, str]:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with asyncio.timeout(timeout_s):
            async with http.post(f"{url}/v1/jobs", json={"kind": "noop"}, headers=headers) as response:
                body = await response.json(content_type=None)
                return str(response.status), time.perf_counter() - started, str(body.get("id", ""))
    except TimeoutError:
        return "no answer", time.perf_counter() - started, ""
    except aiohttp.ClientError as exc:
        return type(exc).__name__, time.perf_counter() - started, ""


def _start_followers(url: str, keys: list[str], count: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "benchmarks.bench_submit_under_fanout", "--follower", url, ",".join(keys)]
    return subprocess.Popen([*command, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _start_profiler(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("py-spy is not on PATH: no profile")
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [py_spy, "record", "-p", str(pid), "-o", str(out), "-d", str(int(seconds)), "-r", "200"]
    return subprocess.Popen([*command, "-f", "speedscope"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def burst(followers: int, submits: int, timeout_s: float, profile: Path | None) -> BurstResult:
    """One fresh service, ``followers`` SSE clients over two owners, ``submits`` concurrent noop POSTs."""
    async with service({"ATELIER_DB_POOL_SIZE": "20"}) as svc:
        engine = create_engine(svc.database_url, pool_size=1)
        keys = [svc.headers["Authorization"].removeprefix("Bearer "), (await issue_key(engine, "second")).secret]
        await engine.dispose()
        follower_process = _start_followers(svc.url, keys, followers)
        if follower_process.stdout is None or follower_process.stdin is None:
            raise RuntimeError("the follower process has no pipes")
        line = await asyncio.to_thread(follower_process.stdout.readline)
        if json.loads(line or "{}").get("connected") != followers:
            raise RuntimeError(f"followers did not connect: {line!r}")
        profiler = _start_profiler(svc.process.pid, profile, timeout_s) if profile else None
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            started = time.perf_counter()
            results = await asyncio.gather(*(_submit(http, svc.url, keys[i % 2], timeout_s) for i in range(submits)))
            ids = [job_id for status, _, job_id in results if status == "202"]
            await wait_for_terminal(svc.database_url, ids, timeout_s=600)
            all_done = time.perf_counter() - started
            async with http.get(f"{svc.url}/metrics") as response:
                server_side = _server_side(await response.text())
        if profiler is not None:
            await asyncio.to_thread(profiler.wait)
        follower_process.stdin.close()
        counts = json.loads(await asyncio.to_thread(follower_process.stdout.read) or "{}")
        await asyncio.to_thread(follower_process.wait, 60)
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    latencies = [seconds for status, seconds, _ in results if status == "202"]
    received, dropped = int(counts.get("events", 0)), int(counts.get("dropped", 0))
    return BurstResult(followers, len(latencies), statuses, latencies, all_done, received, dropped, server_side)


def _server_side(metrics_text: str) -> str:
    """The service's own view of POST /v1/jobs: from the request read to the handler's return."""
    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for line in metrics_text.splitlines():
        if 'route="/v1/jobs"' not in line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("atelier_http_request_seconds_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(value)))
        elif name.startswith("atelier_http_request_seconds_sum"):
            total = float(value)
        elif name.startswith("atelier_http_request_seconds_count"):
            count = float(value)
    if not count:
        return "no server-side figures"
    p99 = next(bound for bound, seen in sorted(buckets) if seen >= 0.99 * count)
    rounds = {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in metrics_text.splitlines())
        if name in ("atelier_sse_fanout_seconds_sum", "atelier_sse_fanout_seconds_count")
    }
    fanout = rounds.get("atelier_sse_fanout_seconds_sum", 0.0)
    n = rounds.get("atelier_sse_fanout_seconds_count", 0.0) or 1.0
    return (
        f"server-side (handler) mean {total / count * 1000:.0f} ms, p99 <= {p99 * 1000:.0f} ms; "
        f"fan-out {n:.0f} rounds, {fanout:.1f} s in all"
    )


async def main(args: argparse.Namespace) -> None:
    """Without, then with the fan-out."""
    print(f"--- {args.submits} concurrent noop submits, {args.timeout:.0f} s per request ---")
    quiet_profile = Path(args.profile) / f"quiet-{int(time.time())}.speedscope.json" if args.profile else None
    quiet = await burst(2, args.submits, args.timeout, quiet_profile)
    print(quiet.report(args.submits))
    profile = Path(args.profile) / f"fanout-{int(time.time())}.speedscope.json" if args.profile else None
    loud = await burst(args.sse, args.submits, args.timeout, profile)
    print(loud.report(args.submits))
    if quiet.latencies and loud.latencies:
        ratio = percentile(loud.latencies, 99) / percentile(quiet.latencies, 99)
        print(f"p99 with {args.sse} followers / p99 with 2: {ratio:.2f}x (goal: 100% answered, p99 <= 1 s)")
    if profile is not None and profile.exists():
        print(f"profile of the service during the fan-out burst: {profile}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--follower":
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(follow(sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sse", type=int, default=2000, help="SSE followers on /v1/events (two owners)")
    parser.add_argument("--submits", type=int, default=1000, help="concurrent POST /v1/jobs")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds until a submit is unanswered")
    parser.add_argument("--profile", help="folder for a py-spy profile of the service during the fan-out burst")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(parser.parse_args()))
