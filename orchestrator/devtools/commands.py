"""``atelier dev …`` subcommands that make random-weight test models.

The lead's CLI calls :func:`register_dev_commands` with the ``dev`` group's subparsers; each subcommand
stores its handler as ``func`` (``func(args) -> int`` exit code).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.devtools.architecture import VARIANTS, Variant
from orchestrator.devtools.models import write_kohya_lora, write_sd15_checkpoint, write_sdxl_checkpoint
from orchestrator.devtools.photos import write_photos

DEFAULT_CHECKPOINT_DIR = Path("models/checkpoints")
DEFAULT_LORA_DIR = Path("models/loras")


def default_checkpoint_path(variant: Variant, family: str = "sd15") -> Path:
    """Where ``make-checkpoint`` writes when no ``--out`` is given."""
    return DEFAULT_CHECKPOINT_DIR / f"{family}-{variant}-random.safetensors"


def default_lora_path(variant: Variant, rank: int) -> Path:
    """Where ``make-lora`` writes when no ``--out`` is given."""
    return DEFAULT_LORA_DIR / f"sd15-{variant}-random-r{rank}.safetensors"


def _report(path: Path, started: float) -> None:
    size_mb = path.stat().st_size / 1e6
    sys.stdout.write(f"{path} ({size_mb:.1f} MB, {time.perf_counter() - started:.1f} s)\n")


def _run(make: Callable[[], Path]) -> int:
    started = time.perf_counter()
    try:
        path = make()
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    _report(path, started)
    return 0


def make_checkpoint_command(args: argparse.Namespace) -> int:
    """Handler of ``make-checkpoint``."""
    variant: Variant = "full" if args.full else "slim"
    out = args.out or default_checkpoint_path(variant, args.family)
    if args.family == "sdxl":
        if not args.full:
            sys.stderr.write("error: SDXL is only made with --full (its exact shapes are how engines recognise it)\n")
            return 2
        return _run(lambda: write_sdxl_checkpoint(out, seed=args.seed))
    return _run(lambda: write_sd15_checkpoint(out, variant=variant, seed=args.seed))


def make_lora_command(args: argparse.Namespace) -> int:
    """Handler of ``make-lora``."""
    out = args.out or default_lora_path(args.variant, args.rank)
    return _run(lambda: write_kohya_lora(out, variant=args.variant, rank=args.rank, seed=args.seed))


def make_photos_command(args: argparse.Namespace) -> int:
    """Handler of ``make-photos``."""
    paths = write_photos(args.folder, args.count, size=args.size, seed=args.seed)
    sys.stdout.write("".join(f"{path}\n" for path in paths))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def register_dev_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``make-checkpoint``, ``make-lora`` and ``make-photos`` to ``subparsers``."""
    ckpt = subparsers.add_parser(
        "make-checkpoint",
        help="write a random-weight SD1.5 (slim by default) or SDXL (--full) checkpoint",
        description="Write a random-weight single-file checkpoint; skipped when already up to date.",
    )
    ckpt.add_argument("--family", choices=("sd15", "sdxl"), default="sd15", help="model family (default sd15)")
    ckpt.add_argument(
        "--full", action="store_true", help="exact shapes (SD1.5 ~2.1 GB, SDXL ~6.9 GB) instead of slim (SD1.5 only)"
    )
    ckpt.add_argument("--out", type=Path, help="output file (default: models/checkpoints/<family>-<variant>-random…)")
    ckpt.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    ckpt.set_defaults(func=make_checkpoint_command)

    lora = subparsers.add_parser(
        "make-lora",
        help="write a random kohya-format LoRA matching a test checkpoint",
        description="Write a random kohya-format LoRA for the slim or full test checkpoint.",
    )
    lora.add_argument("--variant", choices=VARIANTS, default="slim", help="checkpoint it matches (default slim)")
    lora.add_argument("--rank", type=_positive_int, default=4, help="network dim (default 4; alpha = rank)")
    lora.add_argument("--out", type=Path, help="output file (default: models/loras/sd15-<variant>-random-r<rank>…)")
    lora.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    lora.set_defaults(func=make_lora_command)

    photos = subparsers.add_parser(
        "make-photos",
        help="write synthetic photos (random shapes) to train a style LoRA on",
        description="Write COUNT sharp, distinct PNG pictures of random shapes, 1.png ... COUNT.png.",
    )
    photos.add_argument("folder", type=Path, help="where to write them")
    photos.add_argument("--count", type=_positive_int, default=4, help="how many (default 4)")
    photos.add_argument("--size", type=_positive_int, default=512, help="side in pixels (default 512)")
    photos.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    photos.set_defaults(func=make_photos_command)
