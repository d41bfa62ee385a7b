"""Training supervision overhead: the same 6-step SD1.5 LoRA run through the service vs sd-scripts alone.

The service (``atelier serve`` as a subprocess, real sd-scripts, CPU) trains a person subject's 4 photos:
client-visible wall time from ``POST /v1/trainings`` to the ``job.succeeded`` event, which includes the
claim, dataset preparation, run files, the launcher, progress events, storing checkpoints, publishing
(provenance rewrite, models store, storage, registry). "Alone" is ``python train_network.py
--dataset_config D --config_file C`` in the sd-scripts checkout with the very files the service wrote for
its warm-up run (only ``output_dir`` changed). Runs are interleaved, the order alternating per pair; the
warm-up run is not counted (it also hashes the 2 GB base model once; the hash is cached after that).

    ATELIER_SD_SCRIPTS_DIR=... ATELIER_SD_SCRIPTS_PYTHON=... ATELIER_TEST_SD15_FULL_CHECKPOINT=... \\
    [ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR=...] .venv/bin/python -m benchmarks.bench_training_overhead [--pairs 2]

Target (DESIGN.md): ratio <= 1.05 for this short run (<= 1.01 once runs are long).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w
from PIL import Image, ImageOps
from skimage import data as skdata

from benchmarks.harness import RunningService, service

BASE_MODEL = "sd15-bench.safetensors"
TRAINING = {"steps": 6, "resolution": 64, "network_dim": 4, "network_alpha": 4, "batch_size": 1}


@dataclass(frozen=True)
class Setup:
    """Paths of one benchmark session."""

    root: Path
    sd_dir: Path
    sd_python: Path
    checkpoint: Path
    tokenizers: Path | None


def _setup(root: Path) -> Setup:
    missing = [
        n
        for n in ("ATELIER_SD_SCRIPTS_DIR", "ATELIER_SD_SCRIPTS_PYTHON", "ATELIER_TEST_SD15_FULL_CHECKPOINT")
        if not os.environ.get(n)
    ]
    if missing:
        sys.exit(f"set {', '.join(missing)} (real sd-scripts and a full SD1.5 checkpoint are needed)")
    tokenizers = os.environ.get("ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR")
    return Setup(
        root=root,
        sd_dir=Path(os.environ["ATELIER_SD_SCRIPTS_DIR"]),
        sd_python=Path(os.environ["ATELIER_SD_SCRIPTS_PYTHON"]),
        checkpoint=Path(os.environ["ATELIER_TEST_SD15_FULL_CHECKPOINT"]),
        tokenizers=Path(tokenizers) if tokenizers else None,
    )


def _service_env(setup: Setup) -> dict[str, str]:
    models = setup.root / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / BASE_MODEL).symlink_to(setup.checkpoint)
    env = {
        "ATELIER_MODELS_DIR": str(models),
        "ATELIER_VAR_DIR": str(setup.root / "var"),
        "ATELIER_STORAGE_URL": f"file://{setup.root / 'storage'}",
        "ATELIER_SD_SCRIPTS_DIR": str(setup.sd_dir),
        "ATELIER_SD_SCRIPTS_PYTHON": str(setup.sd_python),
        "ATELIER_TRAINING_CPU": "true",
        "ATELIER_WORKER_KINDS": "training,erasure",
    }
    if setup.tokenizers is not None:
        env["ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR"] = str(setup.tokenizers)
    return env


def _photos() -> list[bytes]:
    a = Image.fromarray(skdata.astronaut())
    variants = [
        a,
        ImageOps.mirror(a),
        a.crop((40, 0, 440, 400)).resize((512, 512)),
        ImageOps.mirror(a.crop((60, 20, 420, 380))).resize((480, 480)),
    ]
    out = []
    for image in variants:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


async def _subject(http: aiohttp.ClientSession, svc: RunningService) -> str:
    body = {
        "name": "bench",
        "kind": "person",
        "trigger_word": "zxq",
        "consent": {"confirmed": True, "subject_is_adult": True},
    }
    async with http.post(f"{svc.url}/v1/subjects", json=body, headers=svc.headers) as response:
        assert response.status == 201, await response.text()
        subject_id = str((await response.json())["id"])
    form = aiohttp.FormData()
    for index, data in enumerate(_photos()):
        form.add_field("file", io.BytesIO(data), filename=f"{index}.jpg")
    async with http.post(f"{svc.url}/v1/subjects/{subject_id}/photos", data=form, headers=svc.headers) as response:
        assert (await response.json())["accepted"] == 4
    return subject_id


@dataclass(frozen=True)
class ServiceRun:
    """One run through the service: client-visible wall time, the training process's own time, phases."""

    job_id: str
    wall_s: float
    process_s: float
    phases: dict[str, float]

    @property
    def outside_s(self) -> float:
        """Time the service added around the sd-scripts process (claim, dataset, files, publishing, events)."""
        return self.wall_s - self.process_s


def _phases(marks: dict[str, float]) -> dict[str, float]:
    order = ["started", "dataset", "run_started", "last_step", "lora", "succeeded"]
    present = [name for name in order if name in marks]
    return {f"{a}->{b}": marks[b] - marks[a] for a, b in itertools.pairwise(present)}


def _mark(marks: dict[str, float], event: str, data: dict[str, Any], now: float) -> None:
    kind = data.get("kind") or data.get("stage")
    name = {"job.started": "started", "job.succeeded": "succeeded"}.get(event)
    if event == "job.progress" and kind == "dataset" and data.get("step") == data.get("total"):
        name = "dataset"
    elif event == "job.progress" and kind == "train":
        name = "run_started" if data.get("step") == 0 else "last_step"
    elif event == "job.artifact" and kind == "lora":
        name = "lora"
    if name is not None and not (name == "run_started" and name in marks):
        marks[name] = now


async def _service_run(http: aiohttp.ClientSession, svc: RunningService, subject_id: str) -> ServiceRun:
    """POST to job.succeeded, timed by the client; the phases as the events arrived."""
    body: dict[str, Any] = {"subject_id": subject_id, "base_model": BASE_MODEL, "save_every_n_steps": 3, **TRAINING}
    started = time.perf_counter()
    async with http.post(f"{svc.url}/v1/trainings", json=body, headers=svc.headers) as response:
        accepted = await response.json()
    marks: dict[str, float] = {}
    last, data = "", {}
    async with http.get(svc.url + accepted["events_url"], headers=svc.headers) as stream:
        async for raw in stream.content:
            line = raw.decode().strip()
            if line.startswith("event:"):
                last = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                _mark(marks, last, data, time.perf_counter() - started)
    wall = time.perf_counter() - started
    if last != "job.succeeded":
        sys.exit(f"service run {accepted['id']} ended with {last}: {data}")
    return ServiceRun(str(accepted["id"]), wall, float(data["result"]["duration_s"]), _phases(marks))


def _alone_files(setup: Setup, job_id: str, index: int) -> tuple[Path, Path]:
    """The warm-up run's dataset.toml and a copy of its config.toml writing to a fresh output dir."""
    run_dir = setup.root / "var" / "training" / "runs" / job_id
    config = tomllib.loads((run_dir / "config.toml").read_text())
    out = setup.root / f"alone-{index}"
    config["saving"]["output_dir"] = str(out / "output")
    out.mkdir()
    (out / "config.toml").write_text(tomli_w.dumps(config))
    return run_dir / "dataset.toml", out / "config.toml"


def _check_output(config: Path, code: int) -> None:
    name = tomllib.loads(config.read_text())["saving"]["output_name"]
    if code != 0 or not (config.parent / "output" / f"{name}.safetensors").is_file():
        sys.exit(f"sd-scripts alone failed ({code}); see {config.parent / 'sd-scripts.log'}")


async def _alone_run(setup: Setup, dataset: Path, config: Path) -> float:
    argv = [str(setup.sd_python), "train_network.py", "--dataset_config", str(dataset), "--config_file", str(config)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with (config.parent / "sd-scripts.log").open("wb") as log:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(*argv, cwd=setup.sd_dir, env=env, stdout=log, stderr=log)
        code = await process.wait()
        elapsed = time.perf_counter() - started
    _check_output(config, code)
    return elapsed


def _report(via_service: list[ServiceRun], alone: list[float]) -> None:
    s, a = statistics.median(r.wall_s for r in via_service), statistics.median(alone)
    outside = statistics.median(r.outside_s for r in via_service)
    print(f"service: {', '.join(f'{r.wall_s:.2f}' for r in via_service)} s  (median {s:.2f} s)")
    print(f"alone:   {', '.join(f'{t:.2f}' for t in alone)} s  (median {a:.2f} s)")
    print(f"service time outside the sd-scripts process: {', '.join(f'{r.outside_s:.2f}' for r in via_service)} s")
    print(f"ratio service/alone, medians of wall times: {s / a:.3f}   target <= 1.05")
    print(f"ratio (alone + service time outside the process) / alone: {(a + outside) / a:.3f}")


async def main(pairs: int) -> None:
    """Warm up, then ``pairs`` interleaved service/alone runs; print both and the ratio of medians."""
    setup = _setup(Path(tempfile.mkdtemp(prefix="atelier-bench-training-")))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    async with service(_service_env(setup)) as svc, aiohttp.ClientSession() as http:
        subject_id = await _subject(http, svc)
        warm = await _service_run(http, svc, subject_id)
        print(f"warm-up service run: {warm.wall_s:.2f} s (includes hashing the base model once)")
        via_service: list[ServiceRun] = []
        alone: list[float] = []
        for index in range(pairs):
            dataset, config = _alone_files(setup, warm.job_id, index)
            order = ("service", "alone") if index % 2 == 0 else ("alone", "service")
            for which in order:
                if which == "service":
                    run = await _service_run(http, svc, subject_id)
                    via_service.append(run)
                    phases = ", ".join(f"{k} {v:.2f}" for k, v in run.phases.items())
                    print(f"pair {index + 1}: service {run.wall_s:.2f} s (process {run.process_s:.2f} s; {phases})")
                else:
                    alone.append(await _alone_run(setup, dataset, config))
                    print(f"pair {index + 1}: alone   {alone[-1]:.2f} s")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    _report(via_service, alone)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2, help="interleaved service/alone pairs (default 2)")
    asyncio.run(main(parser.parse_args().pairs))
