"""Declared input/output types of the ComfyUI core nodes our templates use.

These are facts about ComfyUI's nodes (as its ``/object_info`` reports them); the graph builder uses them to
type-check links when a graph is built, long before a backend sees it. A test holds this table to a recorded
``/object_info``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeSpec:
    """What the builder knows about one node class."""

    class_type: str
    title: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Linked (socket) inputs: name -> ComfyUI type. Widget inputs (numbers, strings, combos) are not listed."""
    outputs: tuple[tuple[str, str], ...] = ()
    """Outputs in slot order: (name, ComfyUI type)."""
    output_node: bool = False


def _spec(
    class_type: str,
    title: str,
    inputs: Mapping[str, str] | None = None,
    outputs: tuple[tuple[str, str], ...] = (),
    output_node: bool = False,
) -> NodeSpec:
    return NodeSpec(class_type, title, dict(inputs or {}), outputs, output_node)


_SPECS = (
    _spec("CheckpointLoaderSimple", "Load Checkpoint", outputs=(("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE"))),
    _spec("UNETLoader", "Load Diffusion Model", outputs=(("MODEL", "MODEL"),)),
    _spec("DualCLIPLoader", "Load CLIP (Dual)", outputs=(("CLIP", "CLIP"),)),
    _spec("VAELoader", "Load VAE", outputs=(("VAE", "VAE"),)),
    _spec(
        "LoraLoader",
        "Load LoRA (Model and CLIP)",
        {"model": "MODEL", "clip": "CLIP"},
        (("MODEL", "MODEL"), ("CLIP", "CLIP")),
    ),
    _spec("LoraLoaderModelOnly", "Load LoRA", {"model": "MODEL"}, (("MODEL", "MODEL"),)),
    _spec("CLIPTextEncode", "CLIP Text Encode (Prompt)", {"clip": "CLIP"}, (("CONDITIONING", "CONDITIONING"),)),
    _spec("FluxGuidance", "FluxGuidance", {"conditioning": "CONDITIONING"}, (("CONDITIONING", "CONDITIONING"),)),
    _spec("EmptyLatentImage", "Empty Latent Image", outputs=(("LATENT", "LATENT"),)),
    _spec("EmptySD3LatentImage", "EmptySD3LatentImage", outputs=(("LATENT", "LATENT"),)),
    _spec(
        "KSampler",
        "KSampler",
        {"model": "MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING", "latent_image": "LATENT"},
        (("LATENT", "LATENT"),),
    ),
    _spec("VAEDecode", "VAE Decode", {"samples": "LATENT", "vae": "VAE"}, (("IMAGE", "IMAGE"),)),
    _spec("VAEEncode", "VAE Encode", {"pixels": "IMAGE", "vae": "VAE"}, (("LATENT", "LATENT"),)),
    _spec("RepeatLatentBatch", "Repeat Latent Batch", {"samples": "LATENT"}, (("LATENT", "LATENT"),)),
    _spec("LoadImage", "Load Image", outputs=(("IMAGE", "IMAGE"), ("MASK", "MASK"))),
    _spec("ImageScale", "Upscale Image", {"image": "IMAGE"}, (("IMAGE", "IMAGE"),)),
    _spec("SaveImage", "Save Image", {"images": "IMAGE"}, (("images", "IMAGE"),), output_node=True),
)

NODE_SPECS: Mapping[str, NodeSpec] = {spec.class_type: spec for spec in _SPECS}
"""The declared node classes, by class_type."""
