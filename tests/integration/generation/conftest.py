# SPDX-License-Identifier: Apache-2.0
"""A service that generates on two stand-in ComfyUIs, on its own database.

The stand-ins offer the checkpoints and LoRAs below; the models store holds tiny safetensors files whose
tensor names say SD1.5 or SDXL, so the family comes from the header. Both stand-ins live for the whole
session; a test that kills one revives it (and probes the pool) before it ends.
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from PIL import Image
from safetensors.numpy import save_file
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.engine import create_engine
from orchestrator.generation.generation_services import GENERATION
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, Service, new_caller
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.standin.comfyui.server import CORRUPT_LORA
from tests.support.db import scratch_database
from tests.support.service import running_app
from tests.support.sse import SseEvent, collect
from tests.unit.custom_nodes.recorded import recorded_object_info

SD15 = "sd15-test.safetensors"
SDXL = "sdxl-test.safetensors"
LORA_A = "style-a.safetensors"
LORA_B = "style-b.safetensors"
# Files that tests register in the LoRA registry (each for one owner only: registered files are private).
REGISTERED_LORA = "subject-zq/1/zq-person.safetensors"
XL_LORA = "subject-xl/1/xl-style.safetensors"
FOREIGN_LORA = "subject-other/1/theirs.safetensors"
LISTED_LORA = "subject-listed/2/listed.safetensors"
FLUX = "flux-test"  # a catalog entry: diffusion model + two text encoders + VAE
FLUX_CATALOG = """
flux-test:
  family: flux
  unet: flux-test-unet.safetensors
  clip_l: clip_l.safetensors
  t5xxl: t5xxl_fp8.safetensors
  vae: ae.safetensors
  description: a Flux model as users declare one
"""
STANDIN_MODELS = {
    "checkpoints": [SD15, SDXL],
    "diffusion_models": ["flux-test-unet.safetensors"],
    "text_encoders": ["clip_l.safetensors", "t5xxl_fp8.safetensors"],
    "vae": ["ae.safetensors"],
    "loras": [LORA_A, LORA_B, CORRUPT_LORA, REGISTERED_LORA, XL_LORA, FOREIGN_LORA, LISTED_LORA],
}
_HEADERS = {
    SD15: ("cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
           "model.diffusion_model.input_blocks.0.0.weight"),
    SDXL: ("conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.input_blocks.0.0.weight"),
}  # fmt: skip


@dataclass(frozen=True)
class GenerationService:
    """The in-process service with two stand-in backends."""

    url: str
    app: web.Application
    settings: Settings
    engine: AsyncEngine
    backends: tuple[StandinComfyUI, StandinComfyUI]

    @property
    def database_url(self) -> str:
        """Its database."""
        return self.settings.database_url

    def standin(self, url: str) -> StandinComfyUI:
        """The stand-in serving ``url``."""
        return next(b for b in self.backends if b.url == url.rstrip("/"))

    def app_storage_path(self, key: str) -> Path:
        """Where the local store keeps ``key``."""
        return Path(self.settings.storage_url.removeprefix("file://")) / key

    async def probe(self) -> None:
        """One pool probe round now (instead of waiting for the periodic one)."""
        pool = self.app[GENERATION].backends().pool
        assert pool is not None
        await pool.check()


@pytest.fixture(scope="session")
def generation_database_url() -> Iterator[str]:
    """A database of its own: no other test service claims these generation jobs."""
    with scratch_database("generation") as url:
        yield url


def _models_dir(root: Path) -> Path:
    one = np.zeros((1,), dtype=np.float32)
    (root / "checkpoints").mkdir(parents=True)
    for name, tensors in _HEADERS.items():
        save_file({tensor: one for tensor in tensors}, str(root / "checkpoints" / name))
    (root / "catalog.yaml").write_text(FLUX_CATALOG)
    return root


@pytest.fixture(scope="session")
async def backends() -> AsyncIterator[tuple[StandinComfyUI, StandinComfyUI]]:
    """Two stand-in ComfyUIs offering the same models."""
    # our node pack's nodes as a real ComfyUI lists them, so registered templates can run here too
    options = {"time_scale": 0.001, "models": STANDIN_MODELS, "extra_nodes": recorded_object_info()}
    async with StandinComfyUI(StandinOptions(**options)) as a, StandinComfyUI(StandinOptions(**options)) as b:  # type: ignore[arg-type]
        yield a, b


@pytest.fixture(scope="session")
async def generation_service(
    generation_database_url: str,
    backends: tuple[StandinComfyUI, StandinComfyUI],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[GenerationService]:
    """The service, started once for these tests: quick probes and loss detection, small limits."""
    var = tmp_path_factory.mktemp("generation-var")
    settings = Settings(
        database_url=generation_database_url,
        var_dir=var,
        storage_url=f"file://{var / 'storage'}",
        models_dir=_models_dir(tmp_path_factory.mktemp("generation-models")),
        comfyui_urls=[b.url for b in backends],
        # the second backend's images are read from its output folder, the first's fetched over /view
        comfyui_output_dirs=[f"{backends[1].url}={backends[1].files.dirs['output']}"],
        comfyui_dir=None,  # never launch a local ComfyUI here, whatever the environment says
        comfyui_python=None,
        comfyui_probe_interval_s=0.2,
        comfyui_poll_s=0.05,
        comfyui_lost_after_s=0.5,
        comfyui_ready_wait_s=20.0,
        raw_workflow_url_hosts=["images.example.org"],
        init_image_max_bytes=200_000,
        preview_interval_s=0.05,
        pending_images_sweep_s=3600,  # the tests sweep pending images themselves, when they want to
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2.0,
        idle_poll_s=0.2,
        worker_concurrency=4,
        max_json_body_bytes=64 * 1024,
    )
    engine = create_engine(settings.database_url, pool_size=4)
    async with running_app(settings) as (app, url):
        yield GenerationService(url=url, app=app, settings=settings, engine=engine, backends=backends)
    await engine.dispose()


@pytest.fixture
async def me(generation_service: GenerationService, request: pytest.FixtureRequest) -> Caller:
    """An owner (unique to the test) with an API key."""
    return await new_caller(generation_service.engine, f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}")


async def register_lora(
    svc: GenerationService, owner: object, name: str, family: str, file: str, version: int = 1
) -> None:
    """A LoRA registry entry (as the training feature publishes one) for ``file``."""
    async with svc.engine.begin() as conn:
        lora_id = await conn.scalar(
            text(
                "INSERT INTO loras (id, owner_id, name, base_family, trigger_word) "
                "VALUES (:id, :o, :n, :f, :t) RETURNING id"
            ),
            {"id": uuid.uuid4(), "o": owner, "n": name, "f": family, "t": f"{name.split()[0]}x"},
        )
        await conn.execute(
            text(
                "INSERT INTO lora_versions (id, lora_id, version, storage_key, comfy_name, sha256, size_bytes, "
                "base_model, metadata) VALUES (:id, :l, :v, 'loras/k.safetensors', :file, 'ab', 1, 'm', '{}')"
            ),
            {"id": uuid.uuid4(), "l": lora_id, "v": version, "file": file},
        )


def txt2img(**overrides: Any) -> dict[str, Any]:
    """A small txt2img body (64 px, 4 steps) on the SD1.5 test checkpoint."""
    body: dict[str, Any] = {
        "base_model": SD15,
        "prompt": "a lighthouse at dawn",
        "width": 64,
        "height": 64,
        "steps": 4,
        "seed": 7,
    }
    body.update(overrides)
    return body


def png_data_url(width: int = 32, height: int = 32, colour: tuple[int, int, int] = (200, 40, 40)) -> str:
    """A PNG as a base64 data URL."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def post(
    http: aiohttp.ClientSession, svc: GenerationService, caller: Caller, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """POST /v1/generations: status and JSON body."""
    async with http.post(f"{svc.url}/v1/generations", json=body, headers=caller.headers) as response:
        return response.status, await response.json(content_type=None)


async def submit(http: aiohttp.ClientSession, svc: GenerationService, caller: Caller, body: dict[str, Any]) -> str:
    """POST a generation that must be accepted; its id."""
    status, answer = await post(http, svc, caller, body)
    assert status == 202, answer
    return str(answer["id"])


async def events_of(http: aiohttp.ClientSession, svc: GenerationService, caller: Caller, job_id: str) -> list[SseEvent]:
    """The job's whole SSE stream (it ends after the terminal event)."""
    async with asyncio.timeout(30):
        return await collect(http, f"{svc.url}/v1/jobs/{job_id}/events", headers=caller.headers)


async def get_json(http: aiohttp.ClientSession, svc: GenerationService | Service, caller: Caller, path: str) -> Any:
    """GET a JSON resource that must exist."""
    async with http.get(svc.url + path, headers=caller.headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()
