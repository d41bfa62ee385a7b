# SPDX-License-Identifier: Apache-2.0
"""Scheduling on stand-in ComfyUIs that charge model loads: FIFO against ours, and fairness between owners.

The service runs as its own process (``atelier serve``) with two stand-in ComfyUI processes as its backends.
Each stand-in charges the checkpoint and LoRA-set switch costs recorded from a real ComfyUI
(``tests/fixtures/comfyui/runs/model_loads.json``) whenever a prompt needs another model than its last one.
Timings are the recorded ones times ``--time-scale``; ``ATELIER_AFFINITY_MAX_WAIT_S`` is scaled the same way
(``--bound-s`` recorded seconds), so the bound keeps its proportion to run and load times.

* **Mixed queue.** 3 base models x 4 LoRAs (12 model keys, 5 jobs each): 60 generations in random order, sent
  one after another by one owner; once with ``ATELIER_SCHEDULING=fifo`` (priority, then age; no affinity, no
  fairness) and once as configured by default (``fair``). Printed: model loads (checkpoint and LoRA-set switches,
  counted from each backend's ``/history`` the way the stand-in charges them) and makespan (first request to
  the last ``job.succeeded``), ours / FIFO as ratios.
* **Fairness.** One owner sends 500 jobs; once they are queued, five owners send 10 each. Printed: each light
  owner's p95 wait (request to ComfyUI's ``execution_start``) beside the heavy owner, and solo: the same five
  owners' waits without the heavy one. A fair share between six owners cannot give a light owner the wait it
  has when nobody else is there at all; the heavy owner's 500 jobs should at most double what the light owners
  wait for each other. ``--fairness-fifo`` adds FIFO beside the heavy owner for comparison (it runs all 550).

    python -m benchmarks.bench_scheduling [--time-scale 0.5] [--seed 7] [--only mixed|fairness] [--fairness-fifo]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from benchmarks.harness import JobEnds, percentile, service, wait_for_comfyui
from orchestrator.api.auth import issue_key
from orchestrator.db.engine import asyncpg_dsn, create_engine
from tests.standin.comfyui.loading import LoadCosts, ModelKey, load_needed, model_key
from tests.standin.comfyui.recordings import recorded
from tests.support.service import free_port

CHECKPOINTS = tuple(f"bench-base-{n}.safetensors" for n in "abc")
LORAS = tuple(f"bench-style-{n}.safetensors" for n in range(1, 5))
HEAVY_JOBS, LIGHT_OWNERS, LIGHT_JOBS = 500, 5, 10


def _models(root: Path) -> Path:
    """A model store with the benchmark's checkpoints and LoRAs (empty files: the stand-in only lists them) and
    the ``extra_model_paths.yaml`` that hands it to the stand-ins."""
    for folder, names in (("checkpoints", CHECKPOINTS), ("loras", LORAS)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / folder / name).write_bytes(b"")
    config = root / "extra_model_paths.yaml"
    config.write_text(f"bench:\n  base_path: {root}\n  checkpoints: checkpoints\n  loras: loras\n")
    return config


@asynccontextmanager
async def standin(config: Path, home: Path, time_scale: float) -> AsyncIterator[str]:
    """A stand-in ComfyUI process on a free port, with the run times of the switch recording (so that runs and
    switches keep their recorded proportion) and no previews; its URL."""
    port = free_port()
    argv = [sys.executable, "-m", "tests.standin.comfyui", "--port", str(port), "--time-scale", str(time_scale),
            "--warm-timings", "--no-previews", "--extra-model-paths-config", str(config),
            "--user-directory", str(home)]  # fmt: skip
    quiet = asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(*argv, stdout=quiet, stderr=quiet)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_comfyui(url)
        yield url
    finally:
        process.terminate()
        await process.wait()


def _body(checkpoint: str, lora: str, seed: int) -> dict[str, Any]:
    return {"base_model": checkpoint, "prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 4,
            "seed": seed, "loras": [{"lora": lora, "strength_model": 1.0, "strength_clip": 1.0}]}  # fmt: skip


@dataclass
class Backends:
    """What the stand-ins ran: per prompt (our job id) when it started executing, and the loads they charged."""

    starts: dict[str, float] = field(default_factory=dict)
    loads: Counter[str] = field(default_factory=Counter)


async def backend_report(http: aiohttp.ClientSession, urls: Sequence[str]) -> Backends:
    """Read every backend's ``/history``: execution starts and, in that order per backend, the model switches
    (the stand-in's own rule: :func:`tests.standin.comfyui.loading.load_needed`)."""
    found = Backends()
    for url in urls:
        async with http.get(f"{url}/history") as response:
            history = await response.json()
        runs: list[tuple[float, str, ModelKey | None]] = []
        for prompt_id, entry in history.items():
            stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
            runs.append((stamps["execution_start"] / 1000, prompt_id, model_key(entry["prompt"][2])))
        loaded: ModelKey | None = None
        for start, prompt_id, key in sorted(runs):
            found.starts[prompt_id] = start
            load = load_needed(loaded, key, LoadCosts())
            if load is not None:
                found.loads[load.kind] += 1
            loaded = key or loaded
    return found


@dataclass(frozen=True)
class Setup:
    """What every arm shares."""

    root: Path
    time_scale: float
    bound_s: float


@asynccontextmanager
async def deployment(setup: Setup, scheduling: str, tag: str) -> AsyncIterator[tuple[Any, list[str]]]:
    """Two fresh stand-ins and the service on them; the running service and the backends' URLs."""
    config = _models(setup.root / "models")
    run = setup.root / tag
    async with AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(standin(config, run / f"comfy{n}", setup.time_scale)) for n in (1, 2)]
        env = {"ATELIER_COMFYUI_URLS": ",".join(urls), "ATELIER_MODELS_DIR": str(setup.root / "models"),
               "ATELIER_VAR_DIR": str(run / "var"), "ATELIER_STORAGE_URL": f"file://{run / 'storage'}",
               "ATELIER_PREVIEW_INTERVAL_S": "0", "ATELIER_WORKER_CONCURRENCY": "8",
               "ATELIER_SCHEDULING": scheduling,
               "ATELIER_AFFINITY_MAX_WAIT_S": f"{setup.bound_s * setup.time_scale:.3f}"}  # fmt: skip
        svc = await stack.enter_async_context(service(env))
        yield svc, urls


async def _submit(http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: dict[str, Any]) -> str:
    async with http.post(f"{url}/v1/generations", json=body, headers=headers) as response:
        answer = await response.json()
        if response.status != 202:
            raise RuntimeError(f"POST /v1/generations answered {response.status}: {answer}")
        return str(answer["id"])


async def _created(database_url: str, ids: Iterable[str]) -> dict[str, float]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await conn.fetch(
            "SELECT id::text, extract(epoch FROM created_at)::float8 AS at FROM jobs WHERE id = ANY($1::uuid[])",
            list(ids),
        )
    finally:
        await conn.close()
    return {row["id"]: row["at"] for row in rows}


@dataclass(frozen=True)
class MixedResult:
    """One arm of the mixed queue."""

    scheduling: str
    loads: Counter[str]
    makespan_s: float
    #: Per job, in the order sent: request to ComfyUI's execution_start.
    waits: list[float]

    @property
    def total_loads(self) -> int:
        """Checkpoint and LoRA-set switches together."""
        return sum(self.loads.values())


async def mixed_arm(setup: Setup, scheduling: str, seed: int) -> MixedResult:
    """60 jobs over 12 model keys in random order, one owner, two backends."""
    keys = [(c, lora) for c in CHECKPOINTS for lora in LORAS] * 5
    random.Random(seed).shuffle(keys)
    async with deployment(setup, scheduling, f"mixed-{scheduling}") as (svc, urls), aiohttp.ClientSession() as http:
        ends = JobEnds()
        await ends.follow(http, svc.url, svc.headers)
        began = time.time()
        ids = [await _submit(http, svc.url, svc.headers, _body(c, lora, n)) for n, (c, lora) in enumerate(keys)]
        await ends.wait_for(ids, 600)
        makespan = max(ends.at[i][0] for i in ids) - began
        await ends.close()
        report = await backend_report(http, urls)
        created = await _created(svc.database_url, ids)
    return MixedResult(scheduling, report.loads, makespan, [report.starts[i] - created[i] for i in ids])


async def _owner_keys(database_url: str, names: Sequence[str]) -> list[dict[str, str]]:
    engine = create_engine(database_url, pool_size=1)
    try:
        return [{"Authorization": f"Bearer {(await issue_key(engine, name)).secret}"} for name in names]
    finally:
        await engine.dispose()


async def fairness_arm(setup: Setup, scheduling: str, *, heavy: bool) -> list[float]:
    """Each light owner's p95 wait (seconds, unscaled), with or without the heavy owner's 500 jobs first."""
    tag = f"fair-{scheduling}-{'heavy' if heavy else 'solo'}"
    async with deployment(setup, scheduling, tag) as (svc, urls), aiohttp.ClientSession() as http:
        heavy_key, *light_keys = await _owner_keys(svc.database_url, ["heavy", *(f"light{n}" for n in range(5))])
        ends = JobEnds()
        for headers in light_keys:
            await ends.follow(http, svc.url, headers)
        checkpoint, lora = CHECKPOINTS[0], LORAS[0]
        if heavy:
            sem = asyncio.Semaphore(8)

            async def one(n: int) -> str:
                async with sem:
                    return await _submit(http, svc.url, heavy_key, _body(checkpoint, lora, n))

            await asyncio.gather(*(one(n) for n in range(HEAVY_JOBS)))
        light: list[list[str]] = [[] for _ in light_keys]
        for n in range(LIGHT_JOBS):  # the five owners send their jobs side by side
            for owner, headers in enumerate(light_keys):
                light[owner].append(await _submit(http, svc.url, headers, _body(checkpoint, lora, 10_000 + n)))
        await ends.wait_for([i for ids in light for i in ids], 900)
        await ends.close()
        report = await backend_report(http, urls)
        created = await _created(svc.database_url, [i for ids in light for i in ids])
    return [percentile([report.starts[i] - created[i] for i in ids], 95) for ids in light]


def _loads(counts: Counter[str]) -> str:
    return f"{sum(counts.values())} ({counts['checkpoint']} checkpoint + {counts['lora']} LoRA-set)"


async def main(args: argparse.Namespace) -> None:
    costs = recorded().load_costs
    print(
        f"stand-in: recorded timings x {args.time_scale}; switch costs recorded from a real ComfyUI: checkpoint "
        f"{costs.checkpoint_s:.2f} s, LoRA set {costs.lora_s:.2f} s (x {args.time_scale}: "
        f"{costs.checkpoint_s * args.time_scale * 1000:.0f} / {costs.lora_s * args.time_scale * 1000:.0f} ms); "
        f"affinity bound {args.bound_s:g} s recorded = {args.bound_s * args.time_scale:.2f} s"
    )
    with tempfile.TemporaryDirectory(prefix="atelier-bench-sched-") as tmp:
        setup = Setup(Path(tmp), args.time_scale, args.bound_s)
        if args.only in (None, "mixed"):
            fifo = await mixed_arm(setup, "fifo", args.seed)
            ours = await mixed_arm(setup, "fair", args.seed)
            print("mixed queue: 60 jobs, 3 base models x 4 LoRAs in random order, 2 backends")
            for r in (fifo, ours):
                print(f"  {r.scheduling:5} loads {_loads(r.loads):32} makespan {r.makespan_s:6.2f} s   "
                      f"wait mean {statistics.mean(r.waits):5.2f} s, max {max(r.waits):5.2f} s")  # fmt: skip
            load_ratio = ours.total_loads / max(fifo.total_loads, 1)
            span_ratio = ours.makespan_s / fifo.makespan_s
            print(f"  ours / FIFO: loads {load_ratio:.2f} (target <= 0.5), makespan {span_ratio:.2f} (target <= 1.0)")
            beyond = max(o - f for o, f in zip(ours.waits, fifo.waits, strict=True))
            print(f"  the longest any job waited beyond its FIFO wait: {beyond:.2f} s "
                  f"(bound {args.bound_s * args.time_scale:.2f} s)")  # fmt: skip
        if args.only in (None, "fairness"):
            solo = await fairness_arm(setup, "fair", heavy=False)
            beside = await fairness_arm(setup, "fair", heavy=True)
            fifo_beside = await fairness_arm(setup, "fifo", heavy=True) if args.fairness_fifo else None
            print(f"fairness: one owner {HEAVY_JOBS} jobs, then {LIGHT_OWNERS} owners {LIGHT_JOBS} each; light owners' "
                  "p95 wait (request -> execution start)")  # fmt: skip
            for n, (alone, shared) in enumerate(zip(solo, beside, strict=True)):
                extra = f", FIFO beside heavy {fifo_beside[n]:6.2f} s" if fifo_beside else ""
                print(f"  light{n}: solo {alone:6.2f} s, beside heavy {shared:6.2f} s, ratio {shared / alone:.2f}"
                      f" (target <= 2){extra}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-scale", type=float, default=0.5, help="stand-in timings x this")
    parser.add_argument("--bound-s", type=float, default=60.0, help="affinity bound in recorded seconds")
    parser.add_argument("--seed", type=int, default=7, help="order of the mixed queue")
    parser.add_argument("--only", choices=("mixed", "fairness"))
    parser.add_argument("--fairness-fifo", action="store_true", help="also FIFO beside the heavy owner (slow)")
    asyncio.run(main(parser.parse_args()))
