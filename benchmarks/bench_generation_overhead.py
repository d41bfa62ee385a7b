# SPDX-License-Identifier: Apache-2.0
"""Generation overhead: the same prompt straight to ComfyUI, through Atelier and (given one) through
SaladTechnologies' comfyui-api, in rotating rounds (:mod:`benchmarks.generation_arms` says how each arm works).

Overhead = client-visible time minus ComfyUI's own execution time (``execution_start`` ->
``execution_success`` timestamps in ``/history``); the extra of an arm is its overhead minus the direct
client's in the same round. Rounds where ComfyUI stalled -- its garbage collection (120-640 ms, at most every
10 s, right after a prompt) or another client's prompt ahead of ours -- are reported apart: a run stalled when
the prompt waited in ComfyUI's queue (``execution_start`` - ``create_time``) or when its overhead was above
``--stall-ms``. The summary uses stall-free rounds. It also splits each arm's overhead at ComfyUI's execution:
before ``execution_start`` (the request's way to ComfyUI) and after ``execution_success`` (the result's way
back), read against the client's wall clock, and says where an arm's extra over the direct client sits.

    python -m benchmarks.bench_generation_overhead --comfyui http://127.0.0.1:8188 [--runs 20]
    python -m benchmarks.bench_generation_overhead --standin [--runs 40]   # pure orchestrator overhead
    ... --size 1024                                  # larger images: storing them is part of the overhead
    ... --sal http://127.0.0.1:3000                  # a comfyui-api running beside that ComfyUI
    ... --sal-program comfyui-api/dist/src/index.js [--comfy-output-dir DIR]   # launched here, beside it
    ... --screening off                              # an adult-content key under the permissive policy
    ... --floor                                      # two floor relays as arms (benchmarks.floor_relay)

With ``--standin`` a stand-in ComfyUI (tests/standin/comfyui) runs as a process with scaled-down timings.
The floor relays do the least a service in front of ComfyUI can: ``relay`` only passes the prompt on and
the end back (the extra process hop), ``relay+db`` also commits the job's row while the prompt goes out and its
success before it answers. Atelier's extra over ``relay+db`` is what its features and code add above that floor.
Atelier screens generated images with its content classifier by default (``ATELIER_CONTENT_POLICY=strict``);
neither other arm does anything like it, so ``--screening off`` measures the rest of the path alone.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import statistics
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from benchmarks.generation_arms import (
    SAL_PREFIX,
    AtelierClient,
    ComfyApiClient,
    DirectClient,
    FloorClient,
    Run,
    comfyui_api_process,
    floor_relay_process,
    history_entry,
)
from benchmarks.harness import service, wait_for_comfyui
from comfy_workflows.templates import BaseModelSpec, Txt2ImgRequest, get_template
from orchestrator.db.engine import asyncpg_dsn
from tests.support.service import free_port

SLIM = "sd15-slim-random.safetensors"
STANDIN_CHECKPOINT = "sd15_slim_random.safetensors"
PROMPT = "a red circle on a blue square"

Arm = Callable[[int], Awaitable[Run]]  # seed -> one measured run


def _body(checkpoint: str, seed: int, size: int) -> dict[str, Any]:
    return {"base_model": checkpoint, "prompt": PROMPT, "width": size, "height": size, "steps": 4, "seed": seed,
            "sampler": "euler", "scheduler": "normal", "cfg": 7.0}  # fmt: skip


def _graph(checkpoint: str, seed: int, size: int, prefix: str = "bench/direct") -> dict[str, Any]:
    """The very graph Atelier builds for the same request (file name prefix aside)."""
    request = Txt2ImgRequest.model_validate(_body(checkpoint, seed, size))
    spec = BaseModelSpec(family="sd15", checkpoint=checkpoint)
    return get_template("txt2img").build(request, spec, filename_prefix=prefix).graph


def _output_node(graph: dict[str, Any]) -> str:
    """The graph's one SaveImage node."""
    [node] = [node_id for node_id, node in graph.items() if node["class_type"] == "SaveImage"]
    return node


def _floor_run(relay: FloorClient, checkpoint: str, size: int, output_node: str, seed: int) -> Awaitable[Run]:
    return relay.run(_graph(checkpoint, seed, size, f"bench/{relay.name}"), output_node)


@asynccontextmanager
async def standin_process(root: Path) -> AsyncIterator[str]:
    """The stand-in ComfyUI as a process (recorded timings x 0.01, no previews, outputs under ``root/output``,
    noise images about as large as generated ones); its URL."""
    port = free_port()
    models = root / "models"
    (models / "checkpoints").mkdir(parents=True, exist_ok=True)
    (models / "checkpoints" / STANDIN_CHECKPOINT).write_bytes(b"")
    config = models / "extra_model_paths.yaml"
    config.write_text(f"bench:\n  base_path: {models}\n  checkpoints: checkpoints\n")
    argv = [sys.executable, "-m", "tests.standin.comfyui", "--port", str(port), "--time-scale", "0.01",
            "--no-previews", "--textured-images", "--extra-model-paths-config", str(config),
            "--output-directory", str(root / "output"), "--user-directory", str(models / "run")]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*argv)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_comfyui(url)
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
            entry = await history_entry(http, comfy, run.prompt_id)
            stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
            points = [run.posted_at, at["job.queued"], at["job.started"], entry["prompt"][3]["create_time"],
                      stamps["execution_start"], stamps["execution_success"], at["job.succeeded"],
                      run.received_at]  # fmt: skip
            for name, (start, end) in zip(PHASES, itertools.pairwise(points), strict=True):
                spans[name].append(end - start)
    finally:
        await conn.close()
    print("Atelier run phases (median ms): " + ", ".join(f"{n} {statistics.median(v):.1f}" for n, v in spans.items()))


def _stalled(run: Run, stall_ms: float) -> bool:
    return run.queue_wait_ms >= stall_ms or run.overhead_ms >= stall_ms


def report(rounds: list[dict[str, Run]], stall_ms: float) -> None:
    """Per arm: medians over stall-free rounds, the extra over the direct client (median of the rounds'
    differences), the ratio of median walls and ComfyUI's execution beside it; then the stalls."""
    clean = [r for r in rounds if not any(_stalled(run, stall_ms) for run in r.values())]
    stalls = [run for r in rounds for run in r.values() if _stalled(run, stall_ms)]
    print(f"{len(rounds)} rotating rounds; {len(clean)} stall-free, {len(rounds) - len(clean)} with a stall")
    if not clean:
        return
    direct = [r["direct"] for r in clean]
    direct_wall = statistics.median(d.wall_ms for d in direct)
    direct_exec = statistics.median(d.execution_ms for d in direct)
    print(f"direct client: overhead (median) {statistics.median(d.overhead_ms for d in direct):.2f} ms, "
          f"ComfyUI execution {direct_exec:.1f} ms, wall {direct_wall:.1f} ms; "
          f"{statistics.median(d.lead_ms for d in direct):.2f} ms of it before execution_start, "
          f"{statistics.median(d.tail_ms for d in direct):.2f} ms after execution_success")  # fmt: skip
    for arm in [name for name in clean[0] if name != "direct"]:
        runs = [r[arm] for r in clean]
        extra = [r[arm].overhead_ms - r["direct"].overhead_ms for r in clean]
        execution = statistics.median(run.execution_ms for run in runs)
        ratio = statistics.median(run.wall_ms for run in runs) / direct_wall
        print(f"{arm}: overhead (median) {statistics.median(run.overhead_ms for run in runs):.2f} ms; "
              f"extra over direct (median of rounds) {statistics.median(extra):.2f} ms; "
              f"ComfyUI execution beside it {execution:.1f} ms ({execution - direct_exec:+.1f}); "
              f"ratio of median walls {ratio:.4f}")  # fmt: skip
        lead = statistics.median(r[arm].lead_ms - r["direct"].lead_ms for r in clean)
        tail = statistics.median(r[arm].tail_ms - r["direct"].tail_ms for r in clean)
        print(f"  {arm}: where its extra sits (medians of rounds): {lead:+.2f} ms before ComfyUI's "
              f"execution_start, {tail:+.2f} ms after its execution_success")  # fmt: skip
        accepted = [run.accepted_ms for run in runs if run.accepted_ms is not None]
        if accepted:
            print(f"  {arm}: its answer to the POST (202) came after {statistics.median(accepted):.2f} ms (median)")
    for run in stalls:
        print(f"  stalled {run.path:11} run: wall {run.wall_ms:.0f} ms, execution {run.execution_ms:.0f} ms, "
              f"queue wait {run.queue_wait_ms:.0f} ms, overhead {run.overhead_ms:.0f} ms")  # fmt: skip


async def _round(arms: dict[str, Arm], index: int) -> dict[str, Run]:
    """One run per arm, each with its own seed (so ComfyUI samples every time), the order rotating."""
    names = list(arms)
    shift = index % len(names)
    order = names[shift:] + names[:shift]
    runs = {name: await arms[name](1000 + len(names) * index + position) for position, name in enumerate(order)}
    return {name: runs[name] for name in names}


async def main(args: argparse.Namespace) -> None:
    comfy: str | None = None if args.standin else args.comfyui
    runs = max(args.runs, 10)
    screening = args.screening == "on"
    with tempfile.TemporaryDirectory(prefix="atelier-bench-gen-") as tmp:
        root = Path(tmp)
        async with AsyncExitStack() as stack:
            comfy_url = comfy.rstrip("/") if comfy else await stack.enter_async_context(standin_process(root))
            checkpoint = SLIM if comfy else STANDIN_CHECKPOINT
            output = root / "output" if not comfy else Path(args.comfy_output_dir) if args.comfy_output_dir else None
            reads = output is not None and args.atelier_reads_outputs == "yes"
            env = {"ATELIER_COMFYUI_URLS": comfy_url, "ATELIER_MODELS_DIR": str(root / "models"),
                   "ATELIER_VAR_DIR": str(root / "var"), "ATELIER_STORAGE_URL": f"file://{root / 'storage'}",
                   "ATELIER_PREVIEW_INTERVAL_S": "0",
                   **({"ATELIER_COMFYUI_OUTPUT_DIRS": f"{comfy_url}={output}"} if reads else {}),
                   **({} if screening else {"ATELIER_CONTENT_POLICY": "permissive"})}  # fmt: skip
            svc = await stack.enter_async_context(service(env, adult_content=not screening))
            http = await stack.enter_async_context(aiohttp.ClientSession())
            direct = DirectClient(http, comfy_url)
            atelier = AtelierClient(http, svc.url, svc.headers, comfy_url)
            for client in (direct, atelier):
                await client.start()
                stack.push_async_callback(client.close)
            arms: dict[str, Arm] = {
                "direct": lambda seed: direct.run(_graph(checkpoint, seed, args.size)),
                "atelier": lambda seed: atelier.run(_body(checkpoint, seed, args.size)),
            }
            if args.floor:
                output_node = _output_node(_graph(checkpoint, 0, args.size))
                for name, database in (("relay", None), ("relay+db", asyncpg_dsn(svc.database_url))):
                    relay_url = await stack.enter_async_context(
                        floor_relay_process(comfy_url, database, root / f"{name}.log")
                    )
                    relay = FloorClient(http, relay_url, comfy_url, name)
                    arms[name] = functools.partial(_floor_run, relay, checkpoint, args.size, output_node)
            sal_url = args.sal
            if args.sal_program and output is not None:
                sal_url = await stack.enter_async_context(
                    comfyui_api_process(Path(args.sal_program), comfy_url, output, root / "comfyui-api")
                )
            if sal_url:
                sal = ComfyApiClient(http, sal_url, comfy_url)
                arms["comfyui-api"] = lambda seed: sal.run(_graph(checkpoint, seed, args.size, SAL_PREFIX))
            rounds = [await _round(arms, index) for index in range(args.warmup)]
            service_cpu = psutil.Process(svc.process.pid)
            cpu_before = sum(service_cpu.cpu_times()[:2])
            rounds = [await _round(arms, index) for index in range(args.warmup, args.warmup + runs)]
            cpu_ms = (sum(service_cpu.cpu_times()[:2]) - cpu_before) * 1000 / runs
            if args.phases:
                await phases(http, svc.database_url, comfy_url, [r["atelier"] for r in rounds])
    print(f"target: {comfy or 'stand-in ComfyUI (x0.01 recorded timings)'}; {args.size}x{args.size}, 4 steps; "
          f"{args.warmup} warm-up rounds; Atelier's image screening {args.screening}; "
          f"Atelier reads ComfyUI's output folder: {'yes' if reads else 'no (/view)'}")  # fmt: skip
    report(rounds, args.stall_ms)
    print(f"Atelier service process CPU per round (user + system, every arm's run in it): {cpu_ms:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--comfyui", help="URL of a running ComfyUI that offers the slim test checkpoint")
    target.add_argument("--standin", action="store_true", help="use a stand-in ComfyUI process")
    parser.add_argument("--runs", type=int, default=20, help="measured rounds (>= 10)")
    parser.add_argument("--size", type=int, default=64, help="image width and height (the stand-in saves noise)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured rounds first (model load)")
    parser.add_argument("--stall-ms", type=float, default=100.0, help="queue wait or overhead that marks a stall")
    parser.add_argument("--phases", action="store_true", help="also print where Atelier's time goes")
    parser.add_argument("--screening", choices=("on", "off"), default="on",
                        help="Atelier's screening of generated images (off: permissive policy, adult key)")  # fmt: skip
    sal = parser.add_mutually_exclusive_group()
    sal.add_argument("--sal", help="URL of a comfyui-api running beside the same ComfyUI: a third arm")
    sal.add_argument("--sal-program", help="comfyui-api's dist/src/index.js (or binary), launched beside ComfyUI")
    parser.add_argument("--floor", action="store_true",
                        help="two more arms: floor relays without and with the commits")  # fmt: skip
    parser.add_argument("--comfy-output-dir", help="the --comfyui server's output folder (comfyui-api reads it)")
    parser.add_argument("--atelier-reads-outputs", choices=("yes", "no"), default="yes",
                        help="give Atelier the output folder too (ATELIER_COMFYUI_OUTPUT_DIRS) when known")  # fmt: skip
    args = parser.parse_args()
    if args.sal_program and args.comfyui and not args.comfy_output_dir:
        parser.error("--sal-program with --comfyui needs --comfy-output-dir (comfyui-api reads the files there)")
    asyncio.run(main(args))
