"""Captioning throughput: images per second through :class:`TransformersCaptioner`, and what batching buys.

Builds the tiny random BLIP and Florence-2 models of the tests (the real architectures at toy sizes, so the
figures measure our pipeline and transformers' generate loop, not a real model's compute), then describes
N training-sized images (astronaut crops, 512 px) at several batch sizes on the CPU (torch on ``--threads``,
default 1: ATELIER_CAPTIONER_THREADS). Model loading is timed
apart from describing. Prints images/s per batch size and the ratio to batch size 1.

A real model costs far more per image (BLIP base: ~250 M parameters; Florence-2 base: ~230 M): run with
``--model <dir>`` to time one, e.g. a directory pulled with ``pull_captioner``.

    .venv/bin/python benchmarks/bench_captioning.py [--images 32] [--batch-sizes 1,4,8,16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from tests.support.captioning import build_tiny_blip, build_tiny_florence2
from tests.unit.trainer.images import astronaut
from trainer.dataset.captioner import TransformersCaptioner


def _images(count: int) -> list[Image.Image]:
    source = astronaut()
    out = []
    for index in range(count):
        left = (index * 7) % 128
        out.append(source.crop((left, 0, left + 384, 384)).resize((512, 512)))
    return out


def _time(model_dir: Path, images: list[Image.Image], batch_size: int, args: argparse.Namespace) -> float:
    captioner = TransformersCaptioner(
        model_dir, device="cpu", batch_size=batch_size, max_new_tokens=args.max_new_tokens, threads=args.threads
    )
    captioner.load()
    captioner.describe_batch(images[:batch_size])  # warm-up: first-call allocations, thread pools
    rates = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        texts = captioner.describe_batch(images)
        rates.append(len(texts) / (time.perf_counter() - started))
    return statistics.median(rates)


def _load_time(model_dir: Path, threads: int) -> float:
    started = time.perf_counter()
    TransformersCaptioner(model_dir, device="cpu", threads=threads).load()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--model", type=Path, help="time this model directory instead of the tiny ones")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    images = _images(args.images)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        import torch  # noqa: F401  (its import is not part of loading a model)

        print(f"torch + transformers import: {time.perf_counter() - started:.1f} s")
        if args.model is not None:
            models = {args.model.name: args.model}
        else:
            models = {
                "tiny BLIP": build_tiny_blip(Path(scratch) / "blip"),
                "tiny Florence-2": build_tiny_florence2(Path(scratch) / "florence2"),
            }
        for label, model_dir in models.items():
            print(f"{label}: load {_load_time(model_dir, args.threads) * 1000:.0f} ms")
            base = None
            for size in sizes:
                rate = _time(model_dir, images, size, args)
                base = base or rate
                print(f"  batch {size:3d}: {rate:7.1f} images/s  (x{rate / base:.2f} vs batch {sizes[0]})")


if __name__ == "__main__":
    main()
