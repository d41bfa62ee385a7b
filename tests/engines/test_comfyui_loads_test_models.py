"""A real ComfyUI loads and runs the random-weight test models that ``atelier dev make-…`` writes.

Runs only against a live server: set ``ATELIER_TEST_COMFYUI_URL`` (e.g. http://127.0.0.1:8188) to a ComfyUI
whose model paths contain ``sd15-slim-random.safetensors`` (checkpoints) and ``sd15-slim-random-r4.safetensors``
(loras), made with ``atelier dev make-checkpoint`` and ``atelier dev make-lora``. Set
``ATELIER_TEST_COMFYUI_LOG`` to the server's log file to also check that no LoRA key went unused.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from orchestrator.devtools.commands import default_checkpoint_path, default_lora_path

pytestmark = pytest.mark.engines

URL = os.environ.get("ATELIER_TEST_COMFYUI_URL", "").rstrip("/")
LOG = os.environ.get("ATELIER_TEST_COMFYUI_LOG")
CHECKPOINT = default_checkpoint_path("slim").name
LORA = default_lora_path("slim", 4).name

if not URL:
    pytest.skip(
        "ENGINE TEST SKIPPED: set ATELIER_TEST_COMFYUI_URL to a running ComfyUI to check that it loads the "
        "random-weight test models",
        allow_module_level=True,
    )


def _get(path: str) -> Any:
    with urllib.request.urlopen(URL + path, timeout=30) as response:
        return json.load(response)


def _post(path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        URL + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _txt2img(lora: str | None) -> dict[str, Any]:
    graph: dict[str, Any] = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "sample": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                "latent_image": ["latent", 0], "seed": 1, "steps": 4, "cfg": 7.0,
                "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            },
        },
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["ckpt", 2]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "atelier_test"}},
    }  # fmt: skip
    if lora is not None:
        graph["lora"] = {
            "class_type": "LoraLoader",
            "inputs": {"model": ["ckpt", 0], "clip": ["ckpt", 1], "lora_name": lora,
                       "strength_model": 1.0, "strength_clip": 1.0},
        }  # fmt: skip
        graph["pos"]["inputs"]["clip"] = graph["neg"]["inputs"]["clip"] = ["lora", 1]
        graph["sample"]["inputs"]["model"] = ["lora", 0]
    return graph


def _run(graph: dict[str, Any], timeout_s: float = 300.0) -> dict[str, Any]:
    prompt_id = str(uuid.uuid4())
    _post("/prompt", {"prompt": graph, "prompt_id": prompt_id, "client_id": "atelier-engine-test"})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        history = _get(f"/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            return dict(history[prompt_id])
        time.sleep(0.1)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout_s} s")


def _image(entry: dict[str, Any]) -> np.ndarray:
    image = entry["outputs"]["save"]["images"][0]
    query = urllib.parse.urlencode({k: image[k] for k in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{URL}/view?{query}", timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


@pytest.fixture(scope="module")
def models_present() -> None:
    if CHECKPOINT not in _get("/models/checkpoints") or LORA not in _get("/models/loras"):
        pytest.fail(f"the server at {URL} lacks {CHECKPOINT} or {LORA}; write them with atelier dev make-…")


@pytest.mark.usefixtures("models_present")
def test_slim_txt2img_and_lora() -> None:
    log_size = Path(LOG).stat().st_size if LOG else 0
    plain, adapted = _run(_txt2img(None)), _run(_txt2img(LORA))
    assert plain["status"]["status_str"] == "success", plain["status"]
    assert adapted["status"]["status_str"] == "success", adapted["status"]
    plain_image, adapted_image = _image(plain), _image(adapted)
    assert plain_image.shape == (64, 64, 3)
    assert plain_image.std() > 0  # a NaN latent decodes to a flat black image
    assert not np.array_equal(plain_image, adapted_image)  # the LoRA changed the model
    if LOG:
        with Path(LOG).open(encoding="utf-8", errors="replace") as handle:
            handle.seek(log_size)
            assert "lora key not loaded" not in handle.read()
