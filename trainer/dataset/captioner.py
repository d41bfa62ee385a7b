"""A :class:`~trainer.dataset.captions.Captioner` on Hugging Face ``transformers``: BLIP and Florence-2 models.

The model is a directory in the Hugging Face layout (``config.json``, weights, processor files), loaded with
``transformers``' own classes chosen by the config's ``model_type``: ``blip`` (BlipForConditionalGeneration,
e.g. Salesforce/blip-image-captioning-base) or ``florence2`` (Florence2ForConditionalGeneration with the
``<CAPTION>`` task, e.g. florence-community/Florence-2-base). Nothing is imported or loaded until the first
batch is described (``torch`` and ``transformers`` are the optional ``captions`` extra), and the model is
loaded once per captioner, under a lock, so one captioner can serve every training of a process.

Images go through the processor's PIL backend, chosen explicitly: it needs no ``torchvision`` and gives the
same pixels on every install (the torchvision backend resizes with different filters).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
SUPPORTED_MODEL_TYPES = ("blip", "florence2")
FLORENCE_TASK = "<CAPTION>"
MAX_DESCRIPTION_CHARS = 300

# Words BLIP models are known to invent at the start of captions (a tokenisation artefact of their training
# data, e.g. "arafed man in a suit"); removed rather than trained on.
_ARTEFACTS = re.compile(r"\b(?:araf+e?d?|arafe|araffe)\b\s*", re.IGNORECASE)
_LEADING_FILLER = re.compile(r"^(?:there is|there are|this is|the image shows|an image of|a picture of)\s+", re.I)


class CaptionerError(RuntimeError):
    """The captioning model cannot be loaded or run."""


def clean_description(text: str) -> str:
    """Light clean-up of generated text: one line, no known artefacts or filler opening, no final full stop."""
    text = _ARTEFACTS.sub("", " ".join(text.split()))
    text = _LEADING_FILLER.sub("", text).strip(" .,;:")
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0]
    return text


def model_type_of(model_dir: Path) -> str:
    """The ``model_type`` in a model directory's ``config.json``; CaptionerError when it is not a model we run."""
    import json

    config = model_dir / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise CaptionerError(f"{config} is not a readable model config: {exc}") from exc
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise CaptionerError(
            f"{model_dir} holds a {model_type!r} model; captioning supports {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    return str(model_type)


@dataclass
class _Loaded:
    model: Any
    processor: Any
    device: str
    dtype: Any


class TransformersCaptioner:
    """Describes images with a BLIP or Florence-2 model from ``model_dir`` (see the module docstring).

    ``device``: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu`` or ``cuda``. ``batch_size`` images
    go through the model at once; ``max_new_tokens`` bounds each description. ``threads`` > 0 sets torch's
    CPU thread count for the process (torch's default is one per core, which on a busy 2-core machine made
    generation 7x slower than one thread: 1.05 vs 0.15 s per image with the tiny BLIP). Thread-safe.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str | None = None,
        device: Device = "auto",
        batch_size: int = 8,
        max_new_tokens: int = 40,
        threads: int = 0,
    ) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be at least 1")
        self.model_dir = Path(model_dir)
        self.model_type = model_type_of(self.model_dir)
        self._name = name or self.model_dir.name
        self.device = device
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def name(self) -> str:
        """The model's name (hub id or directory name), kept in dataset manifests."""
        return self._name

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._loaded is not None

    def load(self) -> None:
        """Load the model now (otherwise the first :meth:`describe_batch` does). Blocking."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()

    def _load(self) -> _Loaded:
        try:
            import torch
            from transformers import AutoProcessor, BlipForConditionalGeneration, Florence2ForConditionalGeneration
        except ImportError as exc:
            raise CaptionerError(
                "captioning needs torch and transformers: pip install 'lora-atelier[captions]'"
            ) from exc
        device = self._device(torch)
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        dtype = torch.float16 if device == "cuda" else torch.float32
        classes: dict[str, Any] = {"blip": BlipForConditionalGeneration, "florence2": Florence2ForConditionalGeneration}
        try:
            processor = AutoProcessor.from_pretrained(self.model_dir, backend="pil")
            model = classes[self.model_type].from_pretrained(self.model_dir, dtype=dtype)
        except Exception as exc:  # the files are read by safetensors, tokenizers and json: each raises its own
            raise CaptionerError(f"cannot load the captioning model in {self.model_dir}: {exc}") from exc
        model.to(device)
        model.eval()
        log.info("captioner %s (%s) loaded on %s", self.name, self.model_type, device)
        return _Loaded(model, processor, device, dtype)

    def _device(self, torch: Any) -> str:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise CaptionerError("the captioner is set to cuda, but torch sees no CUDA device")
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def describe_batch(self, images: Sequence[Image.Image]) -> list[str]:
        """One cleaned description per image, in order; ``batch_size`` images per model call."""
        self.load()
        loaded = self._loaded
        if loaded is None:  # load() either set it or raised
            raise CaptionerError("the captioning model is not loaded")
        out: list[str] = []
        for start in range(0, len(images), self.batch_size):
            batch = [image.convert("RGB") for image in images[start : start + self.batch_size]]
            out.extend(clean_description(text) for text in self._generate(loaded, batch))
        return out

    def _generate(self, loaded: _Loaded, batch: list[Image.Image]) -> list[str]:
        import torch

        if self.model_type == "florence2":
            inputs = loaded.processor(text=[FLORENCE_TASK] * len(batch), images=batch, return_tensors="pt")
        else:
            inputs = loaded.processor(images=batch, return_tensors="pt")
        inputs = {
            key: value.to(loaded.device, loaded.dtype) if value.is_floating_point() else value.to(loaded.device)
            for key, value in inputs.items()
        }
        try:
            with torch.inference_mode():
                generated = loaded.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        except (RuntimeError, ValueError) as exc:
            raise CaptionerError(f"the captioning model failed: {exc}") from exc
        texts: list[str] = loaded.processor.batch_decode(generated, skip_special_tokens=True)
        return texts
