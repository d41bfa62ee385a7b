# SPDX-License-Identifier: Apache-2.0
"""Generations through the API on a REAL ComfyUI (the stand-in cases of tests/integration/generation).

Runs when ``ATELIER_TEST_COMFYUI_URL`` names a running ComfyUI whose model paths hold the slim test checkpoint
and LoRA (``atelier dev make-checkpoint`` / ``make-lora``), and/or when ``ATELIER_COMFYUI_DIR`` and
``ATELIER_COMFYUI_PYTHON`` name a ComfyUI checkout: then the service launches local ComfyUIs itself, on a
models store made here with our devtools (slim checkpoint, two slim LoRAs). Killing a ComfyUI mid-run needs
the local ones (two of them: the job must retry on the second, or fail with a class, never hang).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy.engine import make_url

from orchestrator.db.engine import create_engine, migrate
from orchestrator.devtools.commands import default_checkpoint_path, default_lora_path
from orchestrator.devtools.models import write_kohya_lora, write_sd15_checkpoint
from orchestrator.generation.generation_services import GENERATION
from orchestrator.settings import Settings
from tests.conftest import SERVER_URL, _drop_database
from tests.integration.conftest import Caller, new_caller
from tests.support.comfy_history import history_entry
from tests.support.db import wait_for_event, wait_for_terminal
from tests.support.service import running_app
from tests.support.sse import SseEvent, collect

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.engines, pytest.mark.timeout(600)]

URL = os.environ.get("ATELIER_TEST_COMFYUI_URL", "").rstrip("/")
COMFY_DIR = os.environ.get("ATELIER_COMFYUI_DIR")
COMFY_PYTHON = os.environ.get("ATELIER_COMFYUI_PYTHON")
LOCAL = bool(COMFY_DIR and COMFY_PYTHON)
CHECKPOINT = default_checkpoint_path("slim").name
LORA = default_lora_path("slim", 4).name
SECOND_LORA = "sd15-slim-random-r4-seed1.safetensors"

if not URL and not LOCAL:
    pytest.skip(
        "ENGINE TEST SKIPPED: set ATELIER_TEST_COMFYUI_URL to a running ComfyUI (with the slim test models), or "
        "ATELIER_COMFYUI_DIR + ATELIER_COMFYUI_PYTHON to a ComfyUI checkout, to run generations on a real ComfyUI",
        allow_module_level=True,
    )


@dataclass(frozen=True)
class EngineService:
    """The service on real ComfyUI backends."""

    url: str
    app: web.Application
    settings: Settings
    caller: Caller
    loras: tuple[str, str]


def _models_store(root: Path) -> Path:
    write_sd15_checkpoint(root / "checkpoints" / CHECKPOINT, variant="slim")
    write_kohya_lora(root / "loras" / LORA, variant="slim", seed=0)
    write_kohya_lora(root / "loras" / SECOND_LORA, variant="slim", seed=1)
    return root


def _settings(database_url: str, var: Path, models: Path | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "var_dir": var,
        "storage_url": f"file://{var / 'storage'}",
        "comfyui_urls": [],
        "comfyui_dir": None,
        "comfyui_python": None,
        "comfyui_probe_interval_s": 1.0,
        "comfyui_poll_s": 0.25,
        "comfyui_lost_after_s": 3.0,
        "heartbeat_interval_s": 0.5,
        "heartbeat_timeout_s": 10.0,
        "idle_poll_s": 0.5,
    }
    if models is not None:
        values["models_dir"] = models
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def engine_database_url() -> Iterator[str]:
    """A database of its own for these tests."""
    name = f"atelier_test_{os.getpid()}_{uuid.uuid4().hex[:8]}_genengine"
    url = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(migrate(url))
    try:
        yield url
    finally:
        asyncio.run(_drop_database(SERVER_URL, name))


@pytest.fixture(scope="module")
def models_store(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """The models store for local ComfyUIs (None when only a running server is used)."""
    return _models_store(tmp_path_factory.mktemp("engine-models")) if LOCAL else None


@asynccontextmanager
async def _service(settings: Settings, loras: tuple[str, str]) -> AsyncIterator[EngineService]:
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        caller = await new_caller(engine, f"engine-{uuid.uuid4().hex[:8]}")
        async with running_app(settings) as (app, url):
            services = app[GENERATION]
            pool = services.backends().pool
            for instance in services.local:
                await instance.wait_started(1, timeout_s=240.0)
                assert await pool.backend(instance.url).connection.wait_connected(30.0)
            await pool.check()
            assert pool.ready, services.backend_states()
            yield EngineService(url=url, app=app, settings=settings, caller=caller, loras=loras)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def engine_service(
    engine_database_url: str, models_store: Path | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[EngineService]:
    """The service on ATELIER_TEST_COMFYUI_URL, else on one local ComfyUI."""
    var = tmp_path_factory.mktemp("engine-var")
    if URL:
        settings = _settings(engine_database_url, var, models_store, comfyui_urls=[URL])
        loras = (LORA, LORA)  # the shared server offers one slim LoRA: a stack of it twice, at two strengths
    else:
        settings = _settings(
            engine_database_url, var, models_store, comfyui_dir=Path(str(COMFY_DIR)),
            comfyui_python=Path(str(COMFY_PYTHON)), comfyui_cpu=True, comfyui_extra_args="--disable-api-nodes",
        )  # fmt: skip
        loras = (LORA, SECOND_LORA)
    async with _service(settings, loras) as service:
        yield service


def _txt2img(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "base_model": CHECKPOINT,
        "prompt": f"a red circle on a blue square {uuid.uuid4().hex[:6]}",  # new text: no cached conditioning
        "width": 64,
        "height": 64,
        "steps": 12,  # ComfyUI throttles progress messages to ~10/s: enough steps for >= 4 of them
        "seed": 5,
    }
    body.update(overrides)
    return body


async def _submit(http: aiohttp.ClientSession, svc: EngineService, body: dict[str, Any]) -> str:
    async with http.post(f"{svc.url}/v1/generations", json=body, headers=svc.caller.headers) as response:
        answer = await response.json(content_type=None)
        assert response.status == 202, answer
        return str(answer["id"])


async def _events(http: aiohttp.ClientSession, svc: EngineService, job_id: str) -> list[SseEvent]:
    async with asyncio.timeout(300):
        return await collect(http, f"{svc.url}/v1/jobs/{job_id}/events", headers=svc.caller.headers)


async def _image(http: aiohttp.ClientSession, svc: EngineService, job_id: str) -> bytes:
    """The generation's first image, as the API serves it."""
    async with http.get(f"{svc.url}/v1/generations/{job_id}/images/0", headers=svc.caller.headers) as response:
        assert response.status == 200, await response.text()
        return await response.read()


async def _generation(http: aiohttp.ClientSession, svc: EngineService, job_id: str) -> dict[str, Any]:
    async with http.get(f"{svc.url}/v1/generations/{job_id}", headers=svc.caller.headers) as response:
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_txt2img_on_the_slim_checkpoint_end_to_end(
    engine_service: EngineService, http: aiohttp.ClientSession
) -> None:
    svc = engine_service
    job_id = await _submit(http, svc, _txt2img())
    events = await _events(http, svc, job_id)
    types = [e.event for e in events]
    assert types[:2] == ["job.queued", "job.started"], types
    assert types[-2:] == ["job.artifact", "job.succeeded"], events[-1]
    progress = [e.data for e in events if e.event == "job.progress"]
    assert len(progress) >= 4, types
    assert progress[-1]["step"] == progress[-1]["total"] == 12
    artifact = next(e.data for e in events if e.event == "job.artifact")
    stored = await _image(http, svc, job_id)
    image = Image.open(io.BytesIO(stored))
    assert image.size == (64, 64)
    assert np.asarray(image.convert("RGB")).std() > 0  # not a flat (NaN) image
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    generation = await _generation(http, svc, job_id)
    assert generation["result"]["comfy_execution_ms"] > 0


async def test_a_two_lora_stack(engine_service: EngineService, http: aiohttp.ClientSession) -> None:
    svc = engine_service
    first, second = svc.loras
    stack = [{"lora": first, "strength_model": 0.8}, {"lora": second, "strength_model": 0.6, "strength_clip": 0.5}]
    job_id = await _submit(http, svc, _txt2img(loras=stack))
    events = await _events(http, svc, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await _generation(http, svc, job_id)
    assert [x["file"] for x in generation["loras"]] == [first, second]
    assert len(generation["images"]) == 1


async def test_a_bad_checkpoint_is_refused_before_queueing(
    engine_service: EngineService, http: aiohttp.ClientSession
) -> None:
    svc = engine_service
    async with http.post(
        f"{svc.url}/v1/generations", json=_txt2img(base_model="no-such-model.safetensors"), headers=svc.caller.headers
    ) as response:
        answer = await response.json(content_type=None)
    assert response.status == 422, answer
    assert [e["field"] for e in answer["errors"]] == ["base_model"]
    assert CHECKPOINT in answer["errors"][0]["reason"]


async def test_cancel_mid_run_ends_cancelled(engine_service: EngineService, http: aiohttp.ClientSession) -> None:
    svc = engine_service
    job_id = await _submit(http, svc, _txt2img(width=256, height=256, steps=40))
    await wait_for_event(svc.settings.database_url, uuid.UUID(job_id), "job.progress", timeout_s=240)
    async with http.post(f"{svc.url}/v1/generations/{job_id}/cancel", headers=svc.caller.headers) as response:
        assert response.status in (200, 202), await response.text()
    events = await _events(http, svc, job_id)
    assert events[-1].event == "job.cancelled", events[-1]
    backend = (await _generation(http, svc, job_id))["backend"]
    entry = await history_entry(http, backend, job_id)  # ComfyUI stops at the next step: it may lag our event
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]


@pytest.mark.skipif(
    not LOCAL,
    reason="ENGINE TEST SKIPPED: killing ComfyUI mid-run needs ATELIER_COMFYUI_DIR + ATELIER_COMFYUI_PYTHON "
    "(the service launches two local ComfyUIs and one is killed)",
)
async def test_killing_a_local_comfyui_mid_run_retries_on_the_other(
    fresh_database_url: str,
    models_store: Path | None,
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    settings = _settings(
        fresh_database_url, tmp_path, models_store, comfyui_dir=Path(str(COMFY_DIR)),
        comfyui_python=Path(str(COMFY_PYTHON)), comfyui_cpu=True, comfyui_local_instances=2,
        comfyui_extra_args="--disable-api-nodes",
    )  # fmt: skip
    async with _service(settings, (LORA, SECOND_LORA)) as svc:
        job_id = await _submit(http, svc, _txt2img(width=192, height=192, steps=30))
        await wait_for_event(settings.database_url, uuid.UUID(job_id), "job.progress", timeout_s=240)
        backend = (await _generation(http, svc, job_id))["backend"]
        victim = next(i for i in svc.app[GENERATION].local if i.url == backend)
        assert victim.pid is not None
        os.killpg(victim.pid, signal.SIGKILL)
        await wait_for_terminal(settings.database_url, [uuid.UUID(job_id)], timeout_s=300)
        events = await _events(http, svc, job_id)
        generation = await _generation(http, svc, job_id)
    log.warning(
        "killed %s mid-run: %s",
        backend,
        [
            (e.event, e.data.get("error", {}).get("class") or e.data.get("attempt"))
            for e in events
            if e.event != "job.progress"
        ],
    )
    if events[-1].event == "job.succeeded":
        assert "job.retrying" in [e.event for e in events]
        assert generation["result"]["backend"] != backend
    else:
        assert events[-1].event == "job.failed"
        assert events[-1].data["error"]["class"] in {"backend_lost", "backend_unavailable", "no_backend"}


TRAINING_ENV = ("ATELIER_SD_SCRIPTS_DIR", "ATELIER_SD_SCRIPTS_PYTHON", "ATELIER_TEST_SD15_FULL_CHECKPOINT")
TRAINING = all(os.environ.get(name) for name in TRAINING_ENV)


@pytest.mark.slow
@pytest.mark.skipif(
    not (LOCAL and TRAINING),
    reason="ENGINE TEST SKIPPED: a LoRA trained through the API, used in a generation, needs real sd-scripts "
    f"({', '.join(TRAINING_ENV)}) and a local ComfyUI (ATELIER_COMFYUI_DIR + ATELIER_COMFYUI_PYTHON) that reads "
    "the models store the LoRA is published to",
)
async def test_a_lora_trained_through_the_api_loads_cleanly_in_comfyui(
    fresh_database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Imported here: that module skips itself (at import) where sd-scripts is not configured.
    from tests.engines.test_training_engine import BASE_MODEL, _tokenizer_cache, trained_lora
    from tests.integration.training.conftest import TrainingService

    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / BASE_MODEL).symlink_to(os.environ["ATELIER_TEST_SD15_FULL_CHECKPOINT"])
    settings = _settings(
        fresh_database_url, tmp_path / "var", models, comfyui_dir=Path(str(COMFY_DIR)),
        comfyui_python=Path(str(COMFY_PYTHON)), comfyui_cpu=True, comfyui_extra_args="--disable-api-nodes",
        sd_scripts_dir=Path(os.environ["ATELIER_SD_SCRIPTS_DIR"]),
        sd_scripts_python=Path(os.environ["ATELIER_SD_SCRIPTS_PYTHON"]),
        sd_scripts_tokenizer_cache_dir=_tokenizer_cache(tmp_path / "tokenizers"), training_cpu=True,
        heartbeat_interval_s=1.0, heartbeat_timeout_s=30.0,
    )  # fmt: skip
    engine = create_engine(settings.database_url, pool_size=2)
    async with _service(settings, (LORA, LORA)) as svc:
        run = await trained_lora(http, TrainingService(url=svc.url, settings=settings, engine=engine))
        assert run["events"][-1].event == "job.succeeded", run["training"].get("error")
        [lora] = [e.data for e in run["events"] if e.event == "job.artifact" and e.data["kind"] == "lora"]
        owner = EngineService(svc.url, svc.app, settings, run["caller"], svc.loras)
        local = svc.app[GENERATION].local[0]
        log_from = local.log_path.stat().st_size
        body = _txt2img(base_model=BASE_MODEL, prompt="portrait photo of a woman", steps=4)
        plain = await _submit(http, owner, body)
        trained = await _submit(http, owner, {**body, "loras": [{"lora": lora["lora_id"], "version": lora["version"]}]})
        images = []
        for job_id in (plain, trained):
            events = await _events(http, owner, job_id)
            assert events[-1].event == "job.succeeded", events[-1]
            images.append(np.asarray(Image.open(io.BytesIO(await _image(http, owner, job_id)))))
        generation = await _generation(http, owner, trained)
        log = local.log_path.read_bytes()[log_from:].decode(errors="replace")
    await engine.dispose()
    assert generation["loras"][0]["file"] == lora["comfy_name"]
    assert generation["params"]["prompt"].startswith("zxq")  # the trigger word went in
    assert "lora key not loaded" not in log
    assert not np.array_equal(images[0], images[1])  # the LoRA changed the model
