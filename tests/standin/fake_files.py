"""Files the stand-in trainer writes, with the standard library only: safetensors LoRAs, PNGs, state dirs."""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from pathlib import Path

# A few module names of sd-scripts' SD1.5 LoRA (see tests/fixtures/sd_scripts/lora_file_facts.json), with
# made-up small in/out sizes so that the file stays tiny.
LORA_MODULES = {
    "lora_te_text_model_encoder_layers_0_mlp_fc1": (32, 48),
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (32, 32),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (40, 40),
    "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_2": (64, 40),
}


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def safetensors_bytes(tensors: dict[str, tuple[list[int], list[float]]], metadata: dict[str, str]) -> bytes:
    """The safetensors format: u64 LE header size, JSON header (padded to 8 bytes), raw F32 LE data."""
    header: dict[str, object] = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs)


def lora_bytes(dim: int, alpha: float, seed: int, metadata: dict[str, str]) -> bytes:
    """A small LoRA with kohya tensor names: ``<module>.lora_down.weight``, ``.lora_up.weight``, ``.alpha``."""
    rng = random.Random(seed)
    tensors: dict[str, tuple[list[int], list[float]]] = {}
    for module, (fan_in, fan_out) in LORA_MODULES.items():
        tensors[f"{module}.lora_down.weight"] = ([dim, fan_in], [rng.gauss(0, 0.02) for _ in range(dim * fan_in)])
        tensors[f"{module}.lora_up.weight"] = ([fan_out, dim], [rng.gauss(0, 0.001) for _ in range(fan_out * dim)])
        tensors[f"{module}.alpha"] = ([], [alpha])
    return safetensors_bytes(tensors, metadata)


def png_bytes(width: int, height: int, seed: int) -> bytes:
    """An RGB gradient PNG (the format is chunks with CRCs around a zlib stream of filtered rows)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    shade = seed * 37 % 256
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, shade))
        for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def write_state_dir(state_dir: Path, lora: bytes, epoch: int, step: int) -> None:
    """What ``accelerator.save_state`` leaves (sd-scripts' pre-hook writes ``train_state.json`` first;
    accelerate writes the RNG states last)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "train_state.json").write_text(json.dumps({"current_epoch": epoch, "current_step": step}))
    (state_dir / "model.safetensors").write_bytes(lora)
    (state_dir / "optimizer.bin").write_bytes(os.urandom(256))
    (state_dir / "scheduler.bin").write_bytes(b"\x80\x04}\x94.")
    (state_dir / "random_states_0.pkl").write_bytes(os.urandom(64))


def read_state_step(state_dir: Path) -> int:
    """``current_step`` from a state's ``train_state.json`` (sd-scripts' load hook does the same)."""
    return int(json.loads((state_dir / "train_state.json").read_text())["current_step"])
