"""A service that trains with the stand-in trainer (tests/standin/fake_sd_trainer.py), on its own database.

The stand-in is invoked exactly like our launcher (``--events-fd N --sd-scripts-dir D -- train_network.py
...``), so the service runs it as the "launcher" with the test's own Python; the sd-scripts folder only
needs the script file that preflight looks for. The base checkpoint is a tiny safetensors file whose tensor
names say SD1.5. The stand-in's FAKE_SD_* knobs reach it through the environment (monkeypatch).
"""

from __future__ import annotations

import functools
import gzip
import io
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.db.engine import create_engine
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, new_caller
from tests.support.db import scratch_database
from tests.support.dedupe_set import same_person
from tests.support.service import running_app
from tests.unit.trainer.images import encode
from trainer.tokenizer_cache import build_tokenizer_cache

STANDIN = Path(__file__).resolve().parents[2] / "standin" / "fake_sd_trainer.py"
BASE_MODEL = "tiny-sd15.safetensors"
SD15_NAMES = (
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "model.diffusion_model.input_blocks.0.0.weight",
)


@dataclass(frozen=True)
class TrainingService:
    """The in-process service with training configured."""

    url: str
    settings: Settings
    engine: AsyncEngine

    @property
    def database_url(self) -> str:
        """Its database."""
        return self.settings.database_url


@pytest.fixture(scope="session")
def training_database_url() -> Iterator[str]:
    """A database of its own: no other test service's worker may claim these erasure jobs."""
    with scratch_database("training") as url:
        yield url


def _models_dir(root: Path) -> Path:
    one = np.zeros((1,), dtype=np.float32)
    (root / "checkpoints").mkdir(parents=True)
    save_file({name: one for name in SD15_NAMES}, str(root / "checkpoints" / BASE_MODEL))
    save_file({"mystery.weight": one}, str(root / "checkpoints" / "mystery.safetensors"))
    return root


def _tiny_bpe() -> bytes:
    """A valid CLIP BPE merges file with two merges (the real one has 48,894)."""
    return gzip.compress(b"bpe_simple_vocab_16e6.txt#version: 0.2\nh e\nhe l</w>\n")


@pytest.fixture(scope="session")
def training_settings(training_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Quick heartbeats, temp dirs, the stand-in as launcher, small photo limits."""
    var = tmp_path_factory.mktemp("training-var")
    scripts = tmp_path_factory.mktemp("sd-scripts")
    (scripts / "train_network.py").write_text("# preflight looks for this file; the stand-in does the work\n")
    tokenizers = tmp_path_factory.mktemp("tokenizer-cache")
    build_tokenizer_cache(tokenizers, _tiny_bpe())  # the stand-in never reads it; preflight wants it there
    return Settings(
        database_url=training_database_url,
        var_dir=var,
        storage_url=f"file://{var / 'storage'}",
        models_dir=_models_dir(tmp_path_factory.mktemp("training-models")),
        sd_scripts_dir=scripts,
        sd_scripts_python=Path(sys.executable),
        sd_scripts_launcher=STANDIN,
        sd_scripts_tokenizer_cache_dir=tokenizers,
        training_cpu=True,
        training_sigint_grace_s=5,
        training_sigterm_grace_s=3,
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2.0,
        idle_poll_s=0.5,
        worker_concurrency=4,
        max_attempts=2,
        photo_max_bytes=2_000_000,
    )


@pytest.fixture(scope="session")
async def training_service(training_settings: Settings) -> AsyncIterator[TrainingService]:
    """The service, started once for these tests."""
    engine = create_engine(training_settings.database_url, pool_size=4)
    async with running_app(training_settings) as (_app, url):
        yield TrainingService(url=url, settings=training_settings, engine=engine)
    await engine.dispose()


@pytest.fixture
async def me(training_service: TrainingService, request: pytest.FixtureRequest) -> Caller:
    """An owner (unique to the test) with an API key."""
    return await new_caller(training_service.engine, f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}")


@functools.cache
def face_photos() -> list[bytes]:
    """Four distinct photos of one person: the astronaut's head in four other scenes.

    Not crops or mirror images of one photo: those are duplicates of it (trainer.dataset.dedupe).
    """
    return [encode(photo, "JPEG", quality=90) for photo in same_person(4)]


def png_bytes(image: Image.Image) -> bytes:
    """PNG-encode an image."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


async def create_subject(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, **overrides: Any
) -> dict[str, Any]:
    """A person subject with consent (overridable)."""
    body: dict[str, Any] = {
        "name": f"subject {uuid.uuid4().hex[:8]}",
        "kind": "person",
        "trigger_word": "zxq",
        "consent": {"confirmed": True, "subject_is_adult": True, "statement": "signed release, 2026-11-20"},
    }
    body.update(overrides)
    async with http.post(f"{svc.url}/v1/subjects", json=body, headers=caller.headers) as response:
        assert response.status == 201, await response.text()
        created: dict[str, Any] = await response.json()
        return created


async def upload(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, subject_id: str, files: list[tuple[str, bytes]]
) -> dict[str, Any]:
    """POST files as multipart; returns the verdicts."""
    form = aiohttp.FormData()
    for name, data in files:
        form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    url = f"{svc.url}/v1/subjects/{subject_id}/photos"
    async with http.post(url, data=form, headers=caller.headers) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def submit(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, subject: str, **overrides: Any
) -> tuple[int, dict[str, Any]]:
    """POST /v1/trainings for ``subject`` (6 steps at 64 px unless overridden): status and body."""
    body: dict[str, Any] = {"subject_id": subject, "base_model": BASE_MODEL, "steps": 6, "resolution": 64}
    body.update(overrides)
    async with http.post(f"{svc.url}/v1/trainings", json=body, headers=caller.headers) as response:
        return response.status, await response.json(content_type=None)
