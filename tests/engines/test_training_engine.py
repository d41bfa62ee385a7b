"""A real kohya sd-scripts training through the API: person subject with consent, 4 photos, 6 steps at 64 px.

Runs only where sd-scripts is installed: set ``ATELIER_SD_SCRIPTS_DIR`` (the checkout),
``ATELIER_SD_SCRIPTS_PYTHON`` (its venv's python) and ``ATELIER_TEST_SD15_FULL_CHECKPOINT`` (a full-size
SD1.5 checkpoint; random weights do: ``atelier dev make-checkpoint --full``). The offline CLIP tokenizer
cache is ``ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR`` when set, else built from the BPE file of
clip-anytorch/open_clip_torch in that python. On CPU, 2 cores: about 1-2 minutes, ~6.7 GB RSS.

Generation with the trained LoRA on a real ComfyUI (``ATELIER_TEST_COMFYUI_URL``) belongs to the generation
feature's engines test; :func:`trained_lora` below is the hook it can reuse (it returns the published
LoRA's name, version and ComfyUI name; the models dir must then be the one that ComfyUI reads).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.db.engine import create_engine
from orchestrator.settings import Settings
from tests.integration.conftest import new_caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, upload
from tests.support.service import running_app
from tests.support.sse import collect
from trainer import tokenizer_cache
from trainer.provenance import read_metadata

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(1800)]

REQUIRED = ("ATELIER_SD_SCRIPTS_DIR", "ATELIER_SD_SCRIPTS_PYTHON", "ATELIER_TEST_SD15_FULL_CHECKPOINT")
MISSING = [name for name in REQUIRED if not os.environ.get(name)]
if MISSING:
    pytest.skip(
        f"ENGINE TEST SKIPPED: set {', '.join(REQUIRED)} to train a LoRA with real sd-scripts through the API "
        f"(missing: {', '.join(MISSING)})",
        allow_module_level=True,
    )

SD_DIR = Path(os.environ["ATELIER_SD_SCRIPTS_DIR"])
SD_PYTHON = Path(os.environ["ATELIER_SD_SCRIPTS_PYTHON"])
CHECKPOINT = Path(os.environ["ATELIER_TEST_SD15_FULL_CHECKPOINT"])
BASE_MODEL = "sd15-engine-test.safetensors"


def _tokenizer_cache(root: Path) -> Path:
    configured = os.environ.get("ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR")
    if configured:
        return Path(configured)
    try:
        bpe = tokenizer_cache.load_bpe(python=str(SD_PYTHON))
    except tokenizer_cache.BpeNotFoundError:
        pytest.skip(
            "ENGINE TEST SKIPPED: no CLIP BPE file: install clip-anytorch (or open_clip_torch) into sd-scripts' "
            "venv, or set ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR"
        )
    tokenizer_cache.build_tokenizer_cache(root, bpe, include_sdxl=False)
    return root


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        yield session


@pytest.fixture
async def engine_service(fresh_database_url: str, tmp_path: Path) -> AsyncIterator[TrainingService]:
    """The service with real sd-scripts; the checkpoint is linked into a scratch models store."""
    for path in (SD_DIR / "train_network.py", SD_PYTHON, CHECKPOINT):
        assert path.exists(), f"configured for the sd-scripts engine test, but {path} does not exist"
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / BASE_MODEL).symlink_to(CHECKPOINT)
    settings = Settings(
        database_url=fresh_database_url,
        var_dir=tmp_path / "var",
        storage_url=f"file://{tmp_path / 'storage'}",
        models_dir=models,
        sd_scripts_dir=SD_DIR,
        sd_scripts_python=SD_PYTHON,
        sd_scripts_tokenizer_cache_dir=_tokenizer_cache(tmp_path / "tokenizers"),
        training_cpu=True,
        heartbeat_interval_s=1.0,
        heartbeat_timeout_s=30.0,
    )
    engine = create_engine(fresh_database_url, pool_size=2)
    async with running_app(settings) as (_app, url):
        yield TrainingService(url=url, settings=settings, engine=engine)
    await engine.dispose()


async def trained_lora(http: aiohttp.ClientSession, svc: TrainingService) -> dict[str, Any]:
    """Train the 6-step SD1.5 LoRA through the API; returns the events and the training resource."""
    me = await new_caller(svc.engine, f"engine-{uuid.uuid4().hex[:6]}")
    subject = await create_subject(http, svc, me, name="Engine Astronaut", trigger_word="zxq", class_word="woman")
    photos = await upload(http, svc, me, subject["id"], [(f"{i}.jpg", p) for i, p in enumerate(face_photos())])
    assert photos["accepted"] == 4, photos
    body = {
        "subject_id": subject["id"],
        "base_model": BASE_MODEL,
        "preset": "fast",
        "steps": 6,
        "resolution": 64,
        "network_dim": 4,
        "network_alpha": 4,
        "batch_size": 1,
        "save_every_n_steps": 3,
        "sample_prompts": [{"prompt": "portrait photo", "width": 64, "height": 64, "steps": 2, "seed": 1}],
    }
    async with http.post(f"{svc.url}/v1/trainings", json=body, headers=me.headers) as response:
        assert response.status == 202, await response.text()
        accepted = await response.json()
    events = await collect(http, svc.url + accepted["events_url"], headers=me.headers)
    async with http.get(f"{svc.url}/v1/trainings/{accepted['id']}", headers=me.headers) as response:
        training = await response.json()
    return {"subject": subject, "events": events, "training": training, "caller": me}


async def test_real_sd_scripts_trains_a_lora_through_the_api(
    engine_service: TrainingService, http: aiohttp.ClientSession
) -> None:
    svc = engine_service
    run = await trained_lora(http, svc)
    events, training, subject = run["events"], run["training"], run["subject"]
    kinds = [e.event for e in events]
    assert kinds[-1] == "job.succeeded", (kinds, training.get("error"))
    train = [e.data for e in events if e.event == "job.progress" and e.data["stage"] == "train" and e.data["step"]]
    assert [p["step"] for p in train] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(p["loss"], float) for p in train)
    assert all(p["eta_s"] >= 0 for p in train[1:])
    artifacts = [e.data for e in events if e.event == "job.artifact"]
    assert [a["step"] for a in artifacts if a["kind"] == "sample"] == [3, 6]
    assert [a["step"] for a in artifacts if a["kind"] == "checkpoint"] == [3, 6]
    [lora] = [a for a in artifacts if a["kind"] == "lora"]
    published = svc.settings.models_dir / "loras" / lora["comfy_name"]
    assert hashlib.sha256(published.read_bytes()).hexdigest() == lora["sha256"]
    metadata = read_metadata(published)
    assert metadata["ss_network_module"] == "networks.lora"
    assert metadata["ss_steps"] == "6"
    assert metadata["atelier_consent_sha256"] == subject["consent_sha256"]
    assert metadata["atelier_dataset_manifest_sha256"] == training["run"]["manifest_sha256"]
    assert metadata["atelier_base_model"] == BASE_MODEL
    assert len(metadata["atelier_base_model_sha256"]) == 64
    assert metadata["atelier_trigger_word"] == "zxq"
    me = run["caller"]
    async with http.get(f"{svc.url}/v1/loras/{lora['lora_id']}", headers=me.headers) as response:
        registry = await response.json()
    assert registry["versions"][0]["metadata"] == metadata
    assert registry["versions"][0]["sha256"] == lora["sha256"]
