# SPDX-License-Identifier: Apache-2.0
"""Generation overhead: the same prompt straight to ComfyUI vs through Atelier, interleaved.

* direct: a minimal client -- ``POST /prompt`` with its own prompt id, then wait on its websocket for
  ``executing`` with node null (ComfyUI's own example client does exactly this);
* Atelier: ``POST /v1/generations`` (the service runs as its own process, ``atelier serve``) -> the
  ``job.succeeded`` event on an SSE stream of the caller's events (``GET /v1/events``, opened once).

Overhead = client-visible time minus ComfyUI's own execution time (``execution_start`` ->
``execution_success`` timestamps in ``/history``). Runs where ComfyUI stalled -- its garbage collection
(120-640 ms, at most every 10 s, right after a prompt) or another client's prompt ahead of ours -- are
reported apart: a run stalled when the prompt waited in ComfyUI's queue (``execution_start`` -
``create_time``) or when its overhead was above ``--stall-ms``. The summary uses stall-free pairs.

    python -m benchmarks.bench_generation_overhead --comfyui http://127.0.0.1:8188 [--runs 20]
    python -m benchmarks.bench_generation_overhead --standin [--runs 40]   # pure orchestrator overhead

With ``--standin`` a stand-in ComfyUI (tests/standin/comfyui) runs as a process with scaled-down timings.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks.harness import service
from comfy_workflows.templates import BaseModelSpec, Txt2ImgRequest, get_template
from orchestrator.db.engine import asyncpg_dsn
from tests.support.service import free_port

SLIM = "sd15-slim-random.safetensors"
STANDIN_CHECKPOINT = "sd15_slim_random.safetensors"
PROMPT = "a red circle on a blue square"


@dataclass(frozen=True)
class Run:
    """One measured generation."""

    path: str
    wall_ms: float
    execution_ms: float
    queue_wait_ms: float
    prompt_id: str = ""
    posted_at: float = 0.0
    received_at: float = 0.0

    @property
    def overhead_ms(self) -> float:
        """Client-visible time outside ComfyUI's execution."""
        return self.wall_ms - self.execution_ms


def _body(checkpoint: str, seed: int) -> dict[str, Any]:
    return {"base_model": checkpoint, "prompt": PROMPT, "width": 64, "height": 64, "steps": 4, "seed": seed,
            "sampler": "euler", "scheduler": "normal", "cfg": 7.0}  # fmt: skip


def _graph(checkpoint: str, seed: int) -> dict[str, Any]:
    """The very graph Atelier builds for the same request (file name prefix aside)."""
    request = Txt2ImgRequest.model_validate(_body(checkpoint, seed))
    spec = BaseModelSpec(family="sd15", checkpoint=checkpoint)
    return get_template("txt2img").build(request, spec, filename_prefix="bench/direct").graph


async def _timings(http: aiohttp.ClientSession, comfy: str, prompt_id: str) -> tuple[float, float]:
    """ComfyUI's execution time and how long the prompt waited in its queue, from /history."""
    async with http.get(f"{comfy}/history/{prompt_id}") as response:
        entry = (await response.json())[prompt_id]
    stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
    created = entry["prompt"][3].get("create_time", stamps["execution_start"])
    return float(stamps["execution_success"] - stamps["execution_start"]), float(stamps["execution_start"] - created)


class DirectClient:
    """POST /prompt + wait for ``executing`` node null on our websocket."""

    def __init__(self, http: aiohttp.ClientSession, comfy: str) -> None:
        self.http = http
        self.comfy = comfy
        self.client_id = f"bench-direct-{uuid.uuid4().hex[:8]}"
        self._done: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ws = await self.http.ws_connect(f"{self.comfy.replace('http', 'ws', 1)}/ws?clientId={self.client_id}")
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data["type"] == "executing" and data["data"].get("node") is None:
                future = self._done.get(data["data"].get("prompt_id"))
                if future is not None and not future.done():
                    future.set_result(None)

    async def run(self, graph: dict[str, Any]) -> Run:
        prompt_id = str(uuid.uuid4())
        self._done[prompt_id] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        async with self.http.post(f"{self.comfy}/prompt", json=body) as response:
            assert response.status == 200, await response.text()
        try:
            await asyncio.wait_for(self._done[prompt_id], 300)
        finally:
            self._done.pop(prompt_id, None)
        wall = (time.perf_counter() - started) * 1000
        execution, waited = await _timings(self.http, self.comfy, prompt_id)
        return Run("direct", wall, execution, waited)


class AtelierClient:
    """POST /v1/generations + wait for job.succeeded on one long-lived SSE stream."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str], comfy: str) -> None:
        self.http = http
        self.url = url
        self.headers = headers
        self.comfy = comfy
        self._ended: dict[str, tuple[float, str]] = {}
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        response = await self.http.get(f"{self.url}/v1/events", headers=self.headers)
        assert response.status == 200
        self._reader = asyncio.create_task(self._read(response))

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        event = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("job.succeeded", "job.failed", "job.cancelled"):
                self._ended[json.loads(line[5:])["job_id"]] = (time.perf_counter(), event)
                self._changed.set()

    async def run(self, body: dict[str, Any]) -> Run:
        posted_wall = time.time()
        started = time.perf_counter()
        async with self.http.post(f"{self.url}/v1/generations", json=body, headers=self.headers) as response:
            answer = await response.json()
            assert response.status == 202, answer
        job_id = answer["id"]
        async with asyncio.timeout(300):
            while job_id not in self._ended:
                self._changed.clear()
                await self._changed.wait()
        ended, kind = self._ended.pop(job_id)
        assert kind == "job.succeeded", kind
        execution, waited = await _timings(self.http, self.comfy, job_id)
        wall = (ended - started) * 1000
        return Run("atelier", wall, execution, waited, job_id, posted_wall, posted_wall + wall / 1000)


@asynccontextmanager
async def standin_process(models: Path) -> AsyncIterator[str]:
    """The stand-in ComfyUI as a process (recorded timings x 0.01, no previews); its URL."""
    port = free_port()
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    (models / "checkpoints" / STANDIN_CHECKPOINT).write_bytes(b"")
    config = models / "extra_model_paths.yaml"
    config.write_text(f"bench:\n  base_path: {models}\n  checkpoints: checkpoints\n")
    argv = [sys.executable, "-m", "tests.standin.comfyui", "--port", str(port), "--time-scale", "0.01",
            "--no-previews", "--extra-model-paths-config", str(config),
            "--user-directory", str(models / "run")]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*argv)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(30):
            while True:
                try:
                    async with http.get(f"{url}/system_stats") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)  # polling a process that offers no readiness signal
        yield url
    finally:
        process.terminate()
        await process.wait()


PHASES = ("accept", "claim", "submit", "comfy queue", "comfy execution", "collect", "deliver")


async def phases(http: aiohttp.ClientSession, database_url: str, comfy: str, runs: list[Run]) -> None:
    """Where an Atelier run's time goes (medians, wall clock of this machine): POST -> job.queued row ->
    job.started row -> ComfyUI's create_time -> execution_start -> execution_success -> job.succeeded row ->
    SSE receipt."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    spans: dict[str, list[float]] = {name: [] for name in PHASES}
    try:
        for run in runs:
            rows = await conn.fetch(
                "SELECT type, extract(epoch FROM created_at)::float8 AS at FROM job_events WHERE job_id = $1",
                uuid.UUID(run.prompt_id),
            )
            at = {row["type"]: row["at"] * 1000 for row in rows}
            async with http.get(f"{comfy}/history/{run.prompt_id}") as response:
                entry = (await response.json())[run.prompt_id]
            stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
            points = [run.posted_at * 1000, at["job.queued"], at["job.started"], entry["prompt"][3]["create_time"],
                      stamps["execution_start"], stamps["execution_success"], at["job.succeeded"],
                      run.received_at * 1000]  # fmt: skip
            for name, (start, end) in zip(PHASES, itertools.pairwise(points), strict=True):
                spans[name].append(end - start)
    finally:
        await conn.close()
    print("Atelier run phases (median ms): " + ", ".join(f"{n} {statistics.median(v):.1f}" for n, v in spans.items()))


def _stalled(run: Run, stall_ms: float) -> bool:
    return run.queue_wait_ms >= stall_ms or run.overhead_ms >= stall_ms


def report(pairs: list[tuple[Run, Run]], stall_ms: float) -> None:
    """Print the per-path medians over stall-free pairs, the extra overhead, the ratio, and the stalls."""
    clean = [(d, a) for d, a in pairs if not _stalled(d, stall_ms) and not _stalled(a, stall_ms)]
    stalls = [r for pair in pairs for r in pair if _stalled(r, stall_ms)]
    print(f"{len(pairs)} interleaved pairs; {len(clean)} stall-free, {len(pairs) - len(clean)} with a stall")
    if not clean:
        return
    direct = [d.overhead_ms for d, _ in clean]
    atelier = [a.overhead_ms for _, a in clean]
    extra = [a.overhead_ms - d.overhead_ms for d, a in clean]
    ratio = statistics.median(a.wall_ms for _, a in clean) / statistics.median(d.wall_ms for d, _ in clean)
    direct_exec = statistics.median(d.execution_ms for d, _ in clean)
    atelier_exec = statistics.median(a.execution_ms for _, a in clean)
    print(f"ComfyUI execution (median): direct {direct_exec:.1f} ms, through Atelier {atelier_exec:.1f} ms")
    print(f"direct client overhead  (median): {statistics.median(direct):7.2f} ms")
    print(f"through Atelier overhead (median): {statistics.median(atelier):7.2f} ms")
    print(f"extra through Atelier (median of pairs): {statistics.median(extra):.2f} ms (design <= 5, issue <= 15)")
    print(f"ratio Atelier / direct (median wall): {ratio:.4f}  (target <= 1.03)")
    for run in stalls:
        print(f"  stalled {run.path:7} run: wall {run.wall_ms:.0f} ms, execution {run.execution_ms:.0f} ms, "
              f"queue wait {run.queue_wait_ms:.0f} ms, overhead {run.overhead_ms:.0f} ms")  # fmt: skip


async def _pair(
    direct: DirectClient, atelier: AtelierClient, checkpoint: str, *, seed: int, direct_first: bool
) -> tuple[Run, Run]:
    """One run each way (new seeds, so ComfyUI samples every time), in the given order."""
    if direct_first:
        first = await direct.run(_graph(checkpoint, seed))
        return first, await atelier.run(_body(checkpoint, seed + 1))
    second = await atelier.run(_body(checkpoint, seed))
    return await direct.run(_graph(checkpoint, seed + 1)), second


async def main(comfy: str | None, runs: int, warmup: int, stall_ms: float, show_phases: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="atelier-bench-gen-") as tmp:
        root = Path(tmp)
        async with contextlib_nullable(comfy, root) as comfy_url:
            checkpoint = SLIM if comfy else STANDIN_CHECKPOINT
            env = {"ATELIER_COMFYUI_URLS": comfy_url, "ATELIER_MODELS_DIR": str(root / "models"),
                   "ATELIER_VAR_DIR": str(root / "var"), "ATELIER_STORAGE_URL": f"file://{root / 'storage'}",
                   "ATELIER_PREVIEW_INTERVAL_S": "0"}  # fmt: skip
            async with service(env) as svc, aiohttp.ClientSession() as http:
                direct = DirectClient(http, comfy_url)
                atelier = AtelierClient(http, svc.url, svc.headers, comfy_url)
                await direct.start()
                await atelier.start()
                pairs: list[tuple[Run, Run]] = []
                for index in range(warmup + runs):
                    pair = await _pair(direct, atelier, checkpoint, seed=1000 + 2 * index, direct_first=index % 2 == 0)
                    if index >= warmup:
                        pairs.append(pair)
                if show_phases:
                    await phases(http, svc.database_url, comfy_url, [a for _, a in pairs])
    print(f"target: {comfy or 'stand-in ComfyUI (x0.01 recorded timings)'}; 64x64, 4 steps; {warmup} warm-up pairs")
    report(pairs, stall_ms)


@asynccontextmanager
async def contextlib_nullable(comfy: str | None, root: Path) -> AsyncIterator[str]:
    """The given ComfyUI URL, or a stand-in process for the duration."""
    if comfy:
        yield comfy.rstrip("/")
        return
    async with standin_process(root / "models") as url:
        yield url


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--comfyui", help="URL of a running ComfyUI that offers the slim test checkpoint")
    target.add_argument("--standin", action="store_true", help="use a stand-in ComfyUI process")
    parser.add_argument("--runs", type=int, default=20, help="measured runs per path (>= 10)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured pairs first (model load)")
    parser.add_argument("--stall-ms", type=float, default=100.0, help="queue wait or overhead that marks a stall")
    parser.add_argument("--phases", action="store_true", help="also print where Atelier's time goes")
    args = parser.parse_args()
    comfy = None if args.standin else args.comfyui
    asyncio.run(main(comfy, max(args.runs, 10), args.warmup, args.stall_ms, args.phases))
