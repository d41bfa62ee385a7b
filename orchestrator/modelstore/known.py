# SPDX-License-Identifier: Apache-2.0
"""The base models `atelier models pull NAME` knows: which hub files make each, where they go, its catalog entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repository and the store folder it goes to."""

    repo: str
    filename: str
    folder: str
    revision: str = "main"


@dataclass(frozen=True)
class KnownModel:
    """A named base model: its files and the catalog entry that names them (family + files)."""

    name: str
    description: str
    files: tuple[HubFile, ...]
    entry: dict[str, Any]
    gated: bool = False
    generated: str | None = None  # "slim"/"full": made here with random weights, nothing downloaded


_FLUX_TEXT = "comfyanonymous/flux_text_encoders"
_FLUX_ENCODERS = (
    HubFile(_FLUX_TEXT, "clip_l.safetensors", "text_encoders"),
    HubFile(_FLUX_TEXT, "t5xxl_fp16.safetensors", "text_encoders"),
)


def _flux(name: str, repo: str, unet: str, description: str, *, gated: bool) -> KnownModel:
    files = (HubFile(repo, unet, "diffusion_models"), HubFile(repo, "ae.safetensors", "vae"), *_FLUX_ENCODERS)
    entry = {"family": "flux", "unet": unet, "clip_l": "clip_l.safetensors", "t5xxl": "t5xxl_fp16.safetensors",
             "vae": "ae.safetensors"}  # fmt: skip
    return KnownModel(name, description, files, entry, gated=gated)


KNOWN: dict[str, KnownModel] = {
    model.name: model
    for model in (
        KnownModel(
            "sd15",
            "Stable Diffusion 1.5 (pruned, EMA only; 4.3 GB)",
            (HubFile("stable-diffusion-v1-5/stable-diffusion-v1-5", "v1-5-pruned-emaonly.safetensors", "checkpoints"),),
            {"family": "sd15", "checkpoint": "v1-5-pruned-emaonly.safetensors"},
        ),
        KnownModel(
            "sdxl",
            "Stable Diffusion XL base 1.0 (6.9 GB)",
            (HubFile("stabilityai/stable-diffusion-xl-base-1.0", "sd_xl_base_1.0.safetensors", "checkpoints"),),
            {"family": "sdxl", "checkpoint": "sd_xl_base_1.0.safetensors"},
        ),
        _flux(
            "flux-schnell",
            "black-forest-labs/FLUX.1-schnell",
            "flux1-schnell.safetensors",
            "FLUX.1 [schnell] with its VAE and the CLIP-L and T5-XXL text encoders (~33 GB)",
            gated=False,
        ),
        _flux(
            "flux-dev",
            "black-forest-labs/FLUX.1-dev",
            "flux1-dev.safetensors",
            "FLUX.1 [dev] (gated: accept its licence on the hub and set HF_TOKEN) with VAE and text encoders",
            gated=True,
        ),
        KnownModel(
            "demo",
            "random-weight slim SD1.5 made here, no download (372 MB): its images are noise",
            (),
            {"family": "sd15", "checkpoint": "sd15-slim-random.safetensors"},
            generated="slim",
        ),
        KnownModel(
            "demo-full",
            "random-weight SD1.5 at full size made here (2.1 GB, what sd-scripts trains on): noise as well",
            (),
            {"family": "sd15", "checkpoint": "sd15-full-random.safetensors"},
            generated="full",
        ),
    )
}
