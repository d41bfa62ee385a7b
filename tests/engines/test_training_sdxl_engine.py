"""SDXL for real: a LoRA trained through the API with sd-scripts' ``sdxl_train_network.py``, published with
provenance, then used in a generation on a real, locally launched ComfyUI that loads every one of its keys.

Runs where all of this is set: ``ATELIER_SD_SCRIPTS_DIR`` and ``ATELIER_SD_SCRIPTS_PYTHON`` (sd-scripts),
``ATELIER_TEST_SDXL_FULL_CHECKPOINT`` (a full-shape SDXL checkpoint; random weights do:
``atelier dev make-checkpoint --family sdxl --full``, 6.9 GB), ``ATELIER_COMFYUI_DIR`` and
``ATELIER_COMFYUI_PYTHON`` (a ComfyUI checkout the service launches on the test's models store), and enough
free memory. Measured on this project's 2-core CPU machine (``/usr/bin/time -v``, 2 steps at 64 px, latents
and text-encoder outputs cached): sd-scripts peaked at 11.9 GB RSS with the bf16 U-Net our CPU config asks
for (4:54, 66 s a step), 17.7 GB in fp32 (7:00; the fp32 U-Net alone is 10.3 GB, the two fp32 text encoders
3.3 GB). ComfyUI runs with ``--bf16-unet`` for the same reason and still peaked at 14.3 GB loading the
checkpoint. The whole test took 7:31 here. It wants :data:`NEEDED_GB` available and skips, saying so,
where there is less.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from safetensors import safe_open

from orchestrator.db.engine import create_engine
from orchestrator.generation.generation_services import GENERATION
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, new_caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, upload
from tests.support.db import scratch_database
from tests.support.service import running_app
from tests.support.sse import SseEvent, collect
from trainer import tokenizer_cache
from trainer.provenance import read_metadata

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(3600)]

REQUIRED = (
    "ATELIER_SD_SCRIPTS_DIR",
    "ATELIER_SD_SCRIPTS_PYTHON",
    "ATELIER_TEST_SDXL_FULL_CHECKPOINT",
    "ATELIER_COMFYUI_DIR",
    "ATELIER_COMFYUI_PYTHON",
)
MEASURED_PEAK_GB = 11.9  # sd-scripts
COMFYUI_PEAK_GB = 14.3  # ComfyUI loading the checkpoint, after training
NEEDED_GB = 15.0
MISSING = [name for name in REQUIRED if not os.environ.get(name)]
if MISSING:
    pytest.skip(
        f"ENGINE TEST SKIPPED: SDXL training + ComfyUI needs {', '.join(REQUIRED)} (missing: {', '.join(MISSING)})",
        allow_module_level=True,
    )
AVAILABLE_GB = psutil.virtual_memory().available / 1e9
if AVAILABLE_GB < NEEDED_GB:
    pytest.skip(
        f"ENGINE TEST SKIPPED: SDXL training on CPU peaked at {MEASURED_PEAK_GB} GB RSS when measured (bf16 "
        f"U-Net 5.1 GB + fp32 text encoders 3.3 GB, latents and text-encoder outputs cached), ComfyUI loading it "
        f"at {COMFYUI_PEAK_GB} GB; the test wants {NEEDED_GB} GB available and this machine has "
        f"{AVAILABLE_GB:.1f} GB now",
        allow_module_level=True,
    )

BASE_MODEL = "sdxl-engine-test.safetensors"


def _tokenizers(root: Path) -> Path:
    configured = os.environ.get("ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR")
    if configured:
        return Path(configured)
    try:
        bpe = tokenizer_cache.load_bpe(python=os.environ["ATELIER_SD_SCRIPTS_PYTHON"])
    except tokenizer_cache.BpeNotFoundError:
        pytest.skip(
            "ENGINE TEST SKIPPED: no CLIP BPE file in sd-scripts' Python; set ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR"
        )
    tokenizer_cache.build_tokenizer_cache(root, bpe, include_sdxl=True)
    return root


@pytest.fixture(scope="module")
def sdxl_database_url() -> Iterator[str]:
    """A database of its own."""
    with scratch_database("sdxl") as url:
        yield url


@pytest.fixture(scope="module")
async def sdxl_service(
    sdxl_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[TrainingService, Any]]:
    """The service with real sd-scripts and one local ComfyUI, on a models store holding the SDXL checkpoint."""
    root = tmp_path_factory.mktemp("sdxl")
    models = root / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / BASE_MODEL).symlink_to(os.environ["ATELIER_TEST_SDXL_FULL_CHECKPOINT"])
    settings = Settings(
        database_url=sdxl_database_url,
        var_dir=root / "var",
        storage_url=f"file://{root / 'storage'}",
        models_dir=models,
        comfyui_urls=[],
        comfyui_dir=Path(os.environ["ATELIER_COMFYUI_DIR"]),
        comfyui_python=Path(os.environ["ATELIER_COMFYUI_PYTHON"]),
        comfyui_cpu=True,
        comfyui_extra_args="--disable-api-nodes --bf16-unet",
        comfyui_lost_after_s=600.0,  # loading a 6.9 GB checkpoint on a busy CPU keeps ComfyUI quiet a while
        sd_scripts_dir=Path(os.environ["ATELIER_SD_SCRIPTS_DIR"]),
        sd_scripts_python=Path(os.environ["ATELIER_SD_SCRIPTS_PYTHON"]),
        sd_scripts_tokenizer_cache_dir=_tokenizers(root / "tokenizers"),
        training_cpu=True,
        heartbeat_interval_s=1.0,
        heartbeat_timeout_s=60.0,
        db_pool_size=3,
    )
    engine = create_engine(sdxl_database_url, pool_size=2)
    async with running_app(settings) as (app, url):
        services = app[GENERATION]
        for instance in services.local:
            await instance.wait_started(1, timeout_s=300.0)
        yield TrainingService(url=url, settings=settings, engine=engine), app
    await engine.dispose()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session without a total timeout (the training takes minutes)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        yield session


async def _train(
    http: aiohttp.ClientSession, svc: TrainingService, me: Caller
) -> tuple[dict[str, Any], list[SseEvent]]:
    subject = await create_subject(http, svc, me, name="SDXL Astronaut", trigger_word="zxq", class_word="woman")
    photos = await upload(http, svc, me, subject["id"], [(f"{i}.jpg", p) for i, p in enumerate(face_photos())])
    assert photos["accepted"] == 4, photos
    body = {
        "subject_id": subject["id"],
        "base_model": BASE_MODEL,
        "preset": "fast",
        "steps": 2,
        "resolution": 64,
        "network_dim": 4,
        "network_alpha": 4,
        "batch_size": 1,
        "save_every_n_steps": 2,
    }
    async with http.post(f"{svc.url}/v1/trainings", json=body, headers=me.headers) as response:
        assert response.status == 202, await response.text()
        accepted = await response.json()
    events = await collect(http, svc.url + accepted["events_url"], headers=me.headers)
    return subject, events


async def _generate(http: aiohttp.ClientSession, svc: TrainingService, me: Caller, lora: dict[str, Any]) -> str:
    body = {
        "base_model": BASE_MODEL,
        "prompt": "portrait photo of a woman",
        "width": 64,
        "height": 64,
        "steps": 2,
        "seed": 3,
        "loras": [{"lora": lora["lora_id"], "version": lora["version"]}],
    }
    async with http.post(f"{svc.url}/v1/generations", json=body, headers=me.headers) as response:
        answer = await response.json(content_type=None)
        assert response.status == 202, answer
    async with asyncio.timeout(1800):
        events = await collect(http, f"{svc.url}/v1/jobs/{answer['id']}/events", headers=me.headers)
    assert events[-1].event == "job.succeeded", events[-1].data
    return str(answer["id"])


async def test_an_sdxl_lora_trained_through_the_api_loads_cleanly_in_comfyui(
    sdxl_service: tuple[TrainingService, Any], http: aiohttp.ClientSession
) -> None:
    svc, app = sdxl_service
    me = await new_caller(svc.engine, f"sdxl-{uuid.uuid4().hex[:6]}")
    subject, events = await _train(http, svc, me)
    kinds = [e.event for e in events]
    assert kinds[-1] == "job.succeeded", [e.data for e in events if e.event == "job.failed"]
    train = [e.data for e in events if e.event == "job.progress" and e.data["stage"] == "train" and e.data["step"]]
    assert [p["step"] for p in train] == [1, 2]
    assert all(isinstance(p["loss"], float) for p in train)
    [lora] = [e.data for e in events if e.event == "job.artifact" and e.data["kind"] == "lora"]
    published = svc.settings.models_dir / "loras" / lora["comfy_name"]
    assert hashlib.sha256(published.read_bytes()).hexdigest() == lora["sha256"]
    metadata = read_metadata(published)
    assert metadata["ss_network_module"] == "networks.lora"
    assert metadata["ss_base_model_version"].startswith("sdxl")
    assert metadata["atelier_base_model"] == BASE_MODEL
    assert len(metadata["atelier_base_model_sha256"]) == 64
    assert metadata["atelier_consent_sha256"] == subject["consent_sha256"]
    assert metadata["atelier_trigger_word"] == "zxq"
    with safe_open(str(published), "np") as handle:
        keys = list(handle.keys())
    assert keys
    assert all(key.startswith("lora_unet_") for key in keys)  # SDXL trains the U-Net only here
    async with http.get(f"{svc.url}/v1/loras/{lora['lora_id']}", headers=me.headers) as response:
        registry = await response.json()
    assert registry["base_family"] == "sdxl"
    assert registry["versions"][0]["metadata"] == metadata

    local = app[GENERATION].local[0]
    log_from = local.log_path.stat().st_size
    job_id = await _generate(http, svc, me, lora)
    log = local.log_path.read_bytes()[log_from:].decode(errors="replace")
    assert "lora key not loaded" not in log
    async with http.get(f"{svc.url}/v1/generations/{job_id}", headers=me.headers) as response:
        generation = await response.json()
    assert generation["loras"][0]["file"] == lora["comfy_name"]
    assert generation["params"]["prompt"].startswith("zxq")
