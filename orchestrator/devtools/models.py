"""Random-weight SD1.5 and SDXL checkpoints and matching kohya LoRAs for tests (numpy + safetensors, no torch).

Nothing here downloads weights: the tensors are drawn from seeded normal distributions whose scales keep
images and training losses finite, in the exact key layout real SD1.5 (and SDXL base 1.0) files use, so
that ComfyUI and kohya sd-scripts load them as they would a real model. Files are written atomically and
are not rewritten when the target already holds a file generated from the same parameters (kept in the
safetensors metadata).
"""

from __future__ import annotations

import logging
import time
import zlib
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.devtools.architecture import SDXL_FULL, SD15Arch, SDXLArch, Variant, arch_for
from orchestrator.devtools.layout import Init, TensorSpec, checkpoint_layout
from orchestrator.devtools.lora_layout import LoraTarget, lora_targets
from orchestrator.devtools.safetensors_io import TensorEntry, write_atomically

log = logging.getLogger(__name__)

# Bump when the generated values or layout change for the same parameters, so old files get regenerated.
FORMAT_VERSION = 2

# Scale of lora_up: trained LoRAs start from zero; a small non-zero value makes the adapter actually
# change the model (so applying it is observable) while keeping outputs finite.
LORA_UP_STD = 0.01


def checkpoint_params(variant: Variant, seed: int) -> dict[str, Any]:
    """The parameters a checkpoint file is generated from (stored in its metadata)."""
    return {
        "kind": "sd15-checkpoint",
        "format": FORMAT_VERSION,
        "variant": variant,
        "seed": seed,
        "arch": arch_for(variant).to_dict(),
    }


def sdxl_checkpoint_params(seed: int) -> dict[str, Any]:
    """The parameters an SDXL checkpoint file is generated from (stored in its metadata)."""
    return {"kind": "sdxl-checkpoint", "format": FORMAT_VERSION, "variant": "full", "seed": seed,
            "arch": SDXL_FULL.to_dict()}  # fmt: skip


def lora_params(variant: Variant, rank: int, seed: int) -> dict[str, Any]:
    """The parameters a LoRA file is generated from (stored in its metadata)."""
    return {
        "kind": "sd15-kohya-lora",
        "format": FORMAT_VERSION,
        "variant": variant,
        "rank": rank,
        "seed": seed,
        "arch": arch_for(variant).to_dict(),
    }


def _rng(seed: int, name: str) -> np.random.Generator:
    # One stream per tensor name: values do not depend on the order tensors are generated in.
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def tensor_values(spec: TensorSpec, seed: int, dtype: np.dtype[Any]) -> np.ndarray:
    """Deterministic values of one tensor for ``seed``."""
    if spec.init is Init.ZEROS:
        return np.zeros(spec.shape, dtype=dtype)
    if spec.init is Init.ONES:
        return np.ones(spec.shape, dtype=dtype)
    values = _rng(seed, spec.name).standard_normal(spec.shape, dtype=np.float32)
    values *= np.float32(spec.std)
    return values.astype(dtype, copy=False)


def checkpoint_entries(arch: SD15Arch | SDXLArch, seed: int) -> list[TensorEntry]:
    """The tensors of a checkpoint of architecture ``arch``, each produced only when written."""
    dtype = np.dtype(arch.dtype)
    return [
        TensorEntry(spec.name, spec.shape, dtype, partial(tensor_values, spec, seed, dtype))
        for spec in checkpoint_layout(arch)
    ]


def build_checkpoint_tensors(arch: SD15Arch, seed: int) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint of architecture ``arch``, in memory."""
    return {entry.name: entry.produce().astype(entry.dtype) for entry in checkpoint_entries(arch, seed)}


def _lora_down(target: LoraTarget, rank: int, seed: int) -> np.ndarray:
    values = _rng(seed, target.kohya + ".lora_down").standard_normal(target.down_shape(rank), dtype=np.float32)
    values *= np.float32(1.0 / np.sqrt(target.fan_in))
    return values


def _lora_up(target: LoraTarget, rank: int, seed: int) -> np.ndarray:
    values = _rng(seed, target.kohya + ".lora_up").standard_normal(target.up_shape(rank), dtype=np.float32)
    values *= np.float32(LORA_UP_STD)
    return values


def lora_entries(arch: SD15Arch, rank: int, seed: int) -> list[TensorEntry]:
    """The tensors of a kohya-format LoRA for ``arch``; alpha equals the rank (scale 1)."""
    if rank < 1:
        raise ValueError(f"rank must be at least 1, got {rank}")
    dtype = np.dtype(arch.dtype)
    alpha = np.asarray(float(rank), dtype=dtype)
    entries: list[TensorEntry] = []
    for target in lora_targets(arch):
        entries += [
            TensorEntry(f"{target.kohya}.lora_down.weight", target.down_shape(rank), dtype,
                        partial(_lora_down, target, rank, seed)),
            TensorEntry(f"{target.kohya}.lora_up.weight", target.up_shape(rank), dtype,
                        partial(_lora_up, target, rank, seed)),
            TensorEntry(f"{target.kohya}.alpha", (), dtype, partial(alpha.copy)),
        ]  # fmt: skip
    return entries


def build_lora_tensors(arch: SD15Arch, rank: int, seed: int) -> dict[str, np.ndarray]:
    """All tensors of a kohya-format LoRA for ``arch``, in memory."""
    return {entry.name: entry.produce().astype(entry.dtype) for entry in lora_entries(arch, rank, seed)}


def write_sd15_checkpoint(path: Path, *, variant: Variant, seed: int = 0) -> Path:
    """Write a random-weight SD1.5 single-file checkpoint (LDM key layout) to ``path``.

    ``variant="full"`` has the exact SD1.5 shapes (fp16, about 2.1 GB); ``"slim"`` keeps ComfyUI's SD1.5
    detection and loading intact with a much smaller U-Net and VAE decoder (about 370 MB). Returns ``path``;
    does nothing when ``path`` already holds a file generated from the same variant, seed and format.
    """
    arch = arch_for(variant)
    started = time.perf_counter()
    written = write_atomically(
        Path(path),
        checkpoint_entries(arch, seed),
        checkpoint_params(variant, seed),
        {"modelspec.architecture": "stable-diffusion-v1", "atelier.devtools.variant": variant},
    )
    log.info("checkpoint %s ready after %.1f s", written, time.perf_counter() - started)
    return written


def write_sdxl_checkpoint(path: Path, *, seed: int = 0) -> Path:
    """Write a random-weight SDXL single-file checkpoint with SDXL base 1.0's keys and shapes (fp16, ~6.9 GB).

    Returns ``path``; does nothing when ``path`` already holds a file generated from the same seed and format.
    """
    started = time.perf_counter()
    written = write_atomically(
        Path(path),
        checkpoint_entries(SDXL_FULL, seed),
        sdxl_checkpoint_params(seed),
        {"modelspec.architecture": "stable-diffusion-xl-v1-base", "atelier.devtools.variant": "full"},
    )
    log.info("SDXL checkpoint %s ready after %.1f s", written, time.perf_counter() - started)
    return written


def write_kohya_lora(path: Path, *, variant: Variant, rank: int = 4, seed: int = 0) -> Path:
    """Write a random kohya-format LoRA (``lora_unet_*`` / ``lora_te_*``) matching ``variant``'s layout.

    Every key maps onto a weight of the checkpoint that :func:`write_sd15_checkpoint` makes for the same
    variant, so ComfyUI applies all of it. Returns ``path``; skips work when already up to date.
    """
    arch = arch_for(variant)
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(float(rank)),
        "ss_base_model_version": "sd_v1",
        "modelspec.architecture": "stable-diffusion-v1/lora",
    }
    return write_atomically(Path(path), lora_entries(arch, rank, seed), lora_params(variant, rank, seed), metadata)
