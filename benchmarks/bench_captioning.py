"""Captioning throughput: images per second through :class:`TransformersCaptioner`, and what batching buys.

Builds random-weight BLIP and Florence-2 models of the real architectures (``--size tiny``: the tests' toy
sizes, so the figures measure our pipeline and transformers' generate loop; ``--size base``: the published
base models' shapes, so a step costs what the real model's step costs), then describes N training-sized
images (astronaut crops, 512 px) at several batch sizes on ``--device`` (CPU: torch on ``--threads``,
default 1 = ATELIER_CAPTIONER_THREADS; CUDA: fp16, as the captioner runs there). Every description is
exactly ``--max-new-tokens`` tokens long (random weights would stop at random places; real captions are
10-20 tokens), so rates compare across models and devices. Model loading is timed apart from describing.
Prints images/s per batch size and the ratio to the first batch size.

``--agreement`` also describes the same images on the CPU and on ``--device`` and prints how many
descriptions are identical (greedy decoding in fp32 vs fp16: a check that the GPU path runs the same model).
``--model <dir>`` times a real model directory instead (e.g. one pulled with ``atelier models pull blip-base``).

    .venv/bin/python -m benchmarks.bench_captioning [--size tiny|base] [--device cpu|cuda] [--images 32]
        [--batch-sizes 1,4,8,16] [--rounds 3] [--agreement]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.support.captioning import build_blip, build_florence2
from tests.unit.trainer.images import astronaut
from trainer.dataset.captioner import TransformersCaptioner


def _images(count: int) -> list[Image.Image]:
    source = astronaut()
    out = []
    for index in range(count):
        left = (index * 7) % 128
        out.append(source.crop((left, 0, left + 384, 384)).resize((512, 512)))
    return out


def _captioner(model_dir: Path, batch_size: int, device: str, args: argparse.Namespace) -> TransformersCaptioner:
    return TransformersCaptioner(
        model_dir,
        device="cuda" if device == "cuda" else "cpu",
        batch_size=batch_size,
        max_new_tokens=args.max_new_tokens,
        threads=args.threads,
    )


def _rate(model_dir: Path, images: list[Image.Image], batch_size: int, args: argparse.Namespace) -> float:
    captioner = _captioner(model_dir, batch_size, args.device, args)
    captioner.load()
    captioner.describe_batch(images[:batch_size])  # warm-up: first-call allocations, kernels, thread pools
    rates = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        texts = captioner.describe_batch(images)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def _load_time(model_dir: Path, args: argparse.Namespace) -> float:
    started = time.perf_counter()
    _captioner(model_dir, 1, args.device, args).load()
    return time.perf_counter() - started


def _agreement(model_dir: Path, images: list[Image.Image], args: argparse.Namespace) -> tuple[int, list[str]]:
    on_cpu = _captioner(model_dir, 8, "cpu", args).describe_batch(images)
    on_device = _captioner(model_dir, 8, args.device, args).describe_batch(images)
    return sum(a == b for a, b in zip(on_cpu, on_device, strict=True)), on_device[:2]


def _fixed_length(model_dir: Path, tokens: int) -> None:
    """Make every description exactly ``tokens`` long (see the module docstring)."""
    path = model_dir / "generation_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["min_new_tokens"] = tokens
    path.write_text(json.dumps(config), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--model", type=Path, help="time this model directory instead of built ones")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--agreement", action="store_true", help="compare CPU and --device descriptions")
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    images = _images(args.images)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        import torch

        print(f"torch {torch.__version__} import: {time.perf_counter() - started:.1f} s; device {args.device}")
        if args.device == "cuda":
            print(f"  {torch.cuda.get_device_name(0)}")
        if args.model is not None:
            models = {args.model.name: args.model}
        else:
            models = {
                f"{args.size} BLIP": build_blip(Path(scratch) / "blip", size=args.size),
                f"{args.size} Florence-2": build_florence2(Path(scratch) / "florence2", size=args.size),
            }
            for model_dir in models.values():
                _fixed_length(model_dir, args.max_new_tokens)
        for label, model_dir in models.items():
            print(f"{label}: load {_load_time(model_dir, args) * 1000:.0f} ms")
            base = None
            for size in sizes:
                rate = _rate(model_dir, images, size, args)
                base = base or rate
                print(f"  batch {size:3d}: {rate:8.1f} images/s  (x{rate / base:.2f} vs batch {sizes[0]})")
            if args.agreement and args.device != "cpu":
                same, sample = _agreement(model_dir, images, args)
                print(f"  CPU fp32 vs {args.device} fp16: {same}/{len(images)} descriptions identical; e.g. {sample}")


if __name__ == "__main__":
    main()
