# SPDX-License-Identifier: Apache-2.0
"""Base model resolution: catalog entries, safetensors headers, names."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from orchestrator.generation.catalog import (
    CatalogError,
    ModelCatalog,
    UnknownBaseModel,
    family_from_name,
    load_catalog,
)
from orchestrator.modelfiles import family_of, tensor_names

FLUX_ENTRY = """
flux-dev:
  family: flux
  unet: flux1-dev.safetensors
  clip_l: clip_l.safetensors
  t5xxl: t5xxl_fp16.safetensors
  vae: ae.safetensors
  description: FLUX.1 dev
"""


def _checkpoint(root: Path, name: str, tensors: tuple[str, ...]) -> Path:
    path = root / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({t: np.zeros((1,), dtype=np.float32) for t in tensors}, str(path))
    return path


@pytest.mark.parametrize(
    ("names", "family"),
    [
        (["model.diffusion_model.double_blocks.0.img_attn.qkv.weight"], "flux"),
        (["conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.input_blocks.0.0.weight"], "sdxl"),
        (["cond_stage_model.transformer.text_model.x", "model.diffusion_model.input_blocks.0.0.weight"], "sd15"),
        (["model.diffusion_model.input_blocks.0.0.weight"], None),
        (["first_stage_model.decoder.conv_in.weight"], None),
    ],
)
def test_family_from_tensor_names(names: list[str], family: str | None) -> None:
    assert family_of(names) == family


def test_family_from_name() -> None:
    assert family_from_name("juggernautXL_v9.safetensors") == "sdxl"
    assert family_from_name("flux1-schnell-fp8.safetensors") == "flux"
    assert family_from_name("dreamshaper_8.safetensors") is None


def test_unreadable_headers_give_no_names(tmp_path: Path) -> None:
    (tmp_path / "short").write_bytes(b"\x01\x02")
    (tmp_path / "huge").write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    (tmp_path / "garbage").write_bytes((5).to_bytes(8, "little") + b"{nope")
    for name in ("short", "huge", "garbage", "missing"):
        assert tensor_names(tmp_path / name) == []


def test_catalog_file_entries_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(FLUX_ENTRY)
    spec, description = load_catalog(path)["flux-dev"]
    assert (spec.family, spec.unet, spec.vae, description) == (
        "flux",
        "flux1-dev.safetensors",
        "ae.safetensors",
        "FLUX.1 dev",
    )
    path.write_text("flux-dev:\n  family: flux\n  unet: a.safetensors\n")
    with pytest.raises(CatalogError, match=r"flux-dev.*clip_l, t5xxl, vae"):
        load_catalog(path)
    path.write_text("- just a list\n")
    with pytest.raises(CatalogError, match="must map"):
        load_catalog(path)


async def test_resolve_prefers_the_catalog_then_the_header_then_the_name(tmp_path: Path) -> None:
    (tmp_path / "catalog.yaml").write_text(FLUX_ENTRY)
    _checkpoint(
        tmp_path, "house-model.safetensors", ("conditioner.embedders.1.x", "model.diffusion_model.input_blocks.0.0.w")
    )
    catalog = ModelCatalog(tmp_path)

    flux = await catalog.resolve("flux-dev")
    assert (flux.spec.family, flux.family_source) == ("flux", "catalog")
    header = await catalog.resolve("house-model", offered_checkpoints=["house-model.safetensors"])
    assert (header.spec.checkpoint, header.spec.family, header.family_source) == (
        "house-model.safetensors",
        "sdxl",
        "header",
    )
    named = await catalog.resolve("someXLmodel.safetensors")
    assert (named.spec.family, named.family_source) == ("sdxl", "name")
    unknown = await catalog.resolve("dreamshaper_8.safetensors")
    assert (unknown.spec.family, unknown.family_source) == ("sd15", "default")
    with pytest.raises(UnknownBaseModel, match="declare it in the model catalog"):
        await catalog.resolve("flux1-dev-fp8.safetensors")


async def test_a_changed_catalog_is_reread_and_a_broken_one_keeps_the_last(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("mine:\n  family: sdxl\n  checkpoint: a.safetensors\n")
    catalog = ModelCatalog(tmp_path, path)
    assert (await catalog.resolve("mine")).spec.checkpoint == "a.safetensors"
    path.write_text("mine:\n  family: sdxl\n  checkpoint: bb.safetensors\n")
    os.utime(path, ns=(1, 2))
    assert (await catalog.resolve("mine")).spec.checkpoint == "bb.safetensors"
    path.write_text("mine: [broken\n")
    os.utime(path, ns=(3, 4))
    assert (await catalog.resolve("mine")).spec.checkpoint == "bb.safetensors"
    path.unlink()
    assert catalog.entries() == {}


async def test_header_families_are_cached_by_file_version(tmp_path: Path) -> None:
    path = _checkpoint(
        tmp_path, "m.safetensors", ("cond_stage_model.transformer.x", "model.diffusion_model.input_blocks.0.0.w")
    )
    catalog = ModelCatalog(tmp_path)
    assert await catalog.checkpoint_family("m.safetensors") == ("sd15", "header")
    _checkpoint(tmp_path, "m.safetensors", ("model.diffusion_model.double_blocks.0.x",))
    os.utime(path, ns=(5, 6))
    assert await catalog.checkpoint_family("m.safetensors") == ("flux", "header")
    assert await catalog.checkpoint_family("../etc/passwd") == (None, "default")
