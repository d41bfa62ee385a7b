"""One service with both stand-ins (ComfyUI and sd-scripts) for the SDK and CLI tests, on its own database.

The SDK and the CLI talk to it over real HTTP as any user would; a test that needs the connection to drop
puts a :class:`tests.support.proxy.CuttingProxy` between them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.api.auth import issue_key
from orchestrator.db.engine import create_engine
from orchestrator.settings import Settings
from tests.integration.training.conftest import BASE_MODEL, SD15_NAMES, STANDIN, _tiny_bpe, face_photos
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.support.db import scratch_database
from tests.support.service import running_app
from trainer.tokenizer_cache import build_tokenizer_cache

OFFERED_LORA = "style-a.safetensors"


@dataclass(frozen=True)
class ClientService:
    """The running service and what tests need to reach it."""

    url: str
    settings: Settings
    engine: AsyncEngine
    comfyui: StandinComfyUI

    @property
    def database_url(self) -> str:
        """Its database."""
        return self.settings.database_url


@pytest.fixture(scope="session")
def client_database_url() -> Iterator[str]:
    """A database of its own: no other test service claims these jobs."""
    with scratch_database("client") as url:
        yield url


@pytest.fixture(scope="session")
async def client_comfyui() -> AsyncIterator[StandinComfyUI]:
    """A stand-in ComfyUI offering the test checkpoint and one LoRA file."""
    models = {"checkpoints": [BASE_MODEL], "loras": [OFFERED_LORA]}
    async with StandinComfyUI(StandinOptions(time_scale=0.001, models=models)) as comfyui:
        yield comfyui


def _settings(database_url: str, comfyui: StandinComfyUI, tmp: pytest.TempPathFactory) -> Settings:
    var, models, scripts, tokenizers = (tmp.mktemp(n) for n in ("client-var", "client-models", "sd", "tok"))
    (models / "checkpoints").mkdir()
    save_file({name: np.zeros((1,), dtype=np.float32) for name in SD15_NAMES}, str(models / "checkpoints" / BASE_MODEL))
    (scripts / "train_network.py").write_text("# preflight looks for this file; the stand-in does the work\n")
    build_tokenizer_cache(tokenizers, _tiny_bpe())
    return Settings(
        database_url=database_url,
        var_dir=var,
        storage_url=f"file://{var / 'storage'}",
        models_dir=models,
        comfyui_urls=[comfyui.url],
        comfyui_dir=None,
        comfyui_probe_interval_s=0.2,
        comfyui_poll_s=0.05,
        preview_interval_s=0.01,
        sd_scripts_dir=scripts,
        sd_scripts_python=Path(sys.executable),
        sd_scripts_launcher=STANDIN,
        sd_scripts_tokenizer_cache_dir=tokenizers,
        training_cpu=True,
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2.0,
        idle_poll_s=0.5,
        worker_concurrency=4,
        sse_retry_ms=100,
        db_pool_size=4,  # the shared Postgres serves many test runs at once
        webhook_retry_base_s=0.1,
        webhook_allow_hosts=["127.0.0.1"],  # the test receiver listens there
        photo_max_bytes=2_000_000,
    )


@pytest.fixture(scope="session")
async def client_service(
    client_database_url: str, client_comfyui: StandinComfyUI, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ClientService]:
    """The service, started once for the SDK and CLI tests."""
    settings = _settings(client_database_url, client_comfyui, tmp_path_factory)
    engine = create_engine(settings.database_url, pool_size=2)
    async with running_app(settings) as (_app, url):
        yield ClientService(url=url, settings=settings, engine=engine, comfyui=client_comfyui)
    await engine.dispose()


@pytest.fixture
async def api_key(client_service: ClientService, request: pytest.FixtureRequest) -> str:
    """A key of a new owner (unique to the test)."""
    issued = await issue_key(client_service.engine, f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}")
    return issued.secret


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four photos of one face on disk, as a user has them."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for index, data in enumerate(face_photos()):
        path = folder / f"ada-{index}.jpg"
        path.write_bytes(data)
        paths.append(path)
    return paths
