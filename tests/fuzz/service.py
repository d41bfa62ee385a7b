"""The service the fuzzer talks to: a database of its own, the ComfyUI stand-in, the sd-scripts stand-in (so
that every feature is configured: a 503 "not configured" would hide what lies behind it), a key of its own."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from orchestrator.api.auth import issue_key
from orchestrator.db.engine import create_engine, migrate
from orchestrator.settings import Settings
from tests.integration.generation.conftest import STANDIN_MODELS, _models_dir
from tests.integration.training.conftest import STANDIN, _tiny_bpe
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.support.db import SERVER_URL, drop_database
from tests.support.service import running_app
from tests.unit.custom_nodes.recorded import recorded_object_info
from trainer.tokenizer_cache import build_tokenizer_cache


@dataclass(frozen=True)
class FuzzTarget:
    """Where to send requests, with which credentials."""

    url: str
    headers: dict[str, str]


def _sd_scripts(root: Path) -> Path:
    scripts = root / "sd-scripts"
    scripts.mkdir(parents=True)
    (scripts / "train_network.py").write_text("# preflight looks for this file; the stand-in does the work\n")
    return scripts


def _tokenizers(root: Path) -> Path:
    build_tokenizer_cache(root / "tokenizers", _tiny_bpe())
    return root / "tokenizers"


def _settings(database_url: str, comfyui_url: str, root: Path) -> Settings:
    return Settings(
        database_url=database_url,
        var_dir=root / "var",
        storage_url=f"file://{root / 'storage'}",
        models_dir=_models_dir(root / "models"),
        comfyui_urls=[comfyui_url],
        comfyui_dir=None,
        comfyui_python=None,
        comfyui_probe_interval_s=0.5,
        comfyui_ready_wait_s=1.0,
        sd_scripts_dir=_sd_scripts(root),
        sd_scripts_python=Path(sys.executable),
        sd_scripts_launcher=STANDIN,
        sd_scripts_tokenizer_cache_dir=_tokenizers(root),
        training_cpu=True,
        heartbeat_interval_s=0.5,
        heartbeat_timeout_s=3.0,
        worker_concurrency=2,
        shutdown_timeout_s=1.0,
        webhook_max_attempts=1,  # generated webhook URLs name hosts that do not exist
        max_json_body_bytes=64 * 1024,
        init_image_max_bytes=200_000,
    )


@asynccontextmanager
async def _scratch_database() -> AsyncIterator[str]:
    name = f"atelier_fuzz_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    await migrate(url)
    try:
        yield url
    finally:
        await drop_database(SERVER_URL, name)


@asynccontextmanager
async def fuzz_target() -> AsyncIterator[FuzzTarget]:
    """The whole service (API, worker) on a scratch database, generating on the stand-in."""
    options = StandinOptions(time_scale=0.001, models=STANDIN_MODELS, extra_nodes=recorded_object_info())
    with tempfile.TemporaryDirectory(prefix="atelier-fuzz-") as tmp:
        async with _scratch_database() as database_url, StandinComfyUI(options) as comfyui:
            settings = _settings(database_url, comfyui.url, Path(tmp))
            engine = create_engine(database_url, pool_size=1)
            key = await issue_key(engine, "fuzzer")
            await engine.dispose()
            async with running_app(settings) as (_app, url):
                yield FuzzTarget(url, {"Authorization": f"Bearer {key.secret}"})
