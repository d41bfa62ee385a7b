# SPDX-License-Identifier: Apache-2.0
"""A real ComfyUI (with its own frontend and our node pack) next to the service, for the editor engine tests.

ComfyUI runs from ``ATELIER_TEST_COMFYUI_DIR`` with ``ATELIER_TEST_COMFYUI_PYTHON`` in a base directory of its
own (its own user directory, database and ``models/loras`` for the remote loader's downloads), the pack linked
into its ``custom_nodes``, our models store (a slim SD1.5 checkpoint) as extra model paths, and ``ATELIER_URL``
pointing at the service. The service runs in this process on a port chosen beforehand, generates on that
ComfyUI and trains with the sd-scripts stand-in (tests/standin/fake_sd_trainer.py), which the integration tests
hold to the real sd-scripts. The service can stop listening for a while (``offline``) to show that cached
LoRAs load without it.
"""

from __future__ import annotations

import gzip
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.api.auth import issue_key
from orchestrator.app import create_app
from orchestrator.comfy import LocalComfyConfig, LocalComfyUI
from orchestrator.db.engine import create_engine
from orchestrator.devtools.models import write_sd15_checkpoint
from orchestrator.settings import Settings
from tests.integration.training.conftest import face_photos
from tests.support.service import free_port
from trainer.tokenizer_cache import build_tokenizer_cache

PACK = Path(__file__).resolve().parents[2] / "custom_nodes" / "atelier_nodes"
STANDIN_TRAINER = Path(__file__).resolve().parents[1] / "standin" / "fake_sd_trainer.py"
CHECKPOINT = "sd15-slim-random.safetensors"


@dataclass
class EditorStack:
    """ComfyUI with the pack and the service it talks to."""

    comfy: LocalComfyUI
    service_url: str
    settings: Settings
    engine: AsyncEngine
    key: str
    base_dir: Path
    _runner: web.AppRunner
    _site: web.TCPSite | None = field(default=None, repr=False)

    @property
    def comfy_url(self) -> str:
        """Where ComfyUI (and its editor) answers."""
        return self.comfy.url

    @property
    def headers(self) -> dict[str, str]:
        """The API key as a request header."""
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def remote_cache(self) -> Path:
        """Where the remote loader keeps downloads from this service."""
        port = self.service_url.rsplit(":", 1)[1]
        return self.base_dir / "models" / "loras" / "atelier" / f"127.0.0.1_{port}"

    async def listen(self) -> None:
        """Answer HTTP on the service's port."""
        port = int(self.service_url.rsplit(":", 1)[1])
        self._site = web.TCPSite(self._runner, "127.0.0.1", port)
        await self._site.start()

    @asynccontextmanager
    async def offline(self) -> AsyncIterator[None]:
        """The service stops answering (its port closed) for the duration."""
        if self._site is not None:
            await self._site.stop()
        try:
            yield
        finally:
            await self.listen()


def models_store(root: Path) -> Path:
    """A models store with the slim checkpoint (ComfyUI generates with it, the stand-in "trains" on it)."""
    write_sd15_checkpoint(root / "checkpoints" / CHECKPOINT, variant="slim")
    return root


def _training_settings(root: Path) -> dict[str, Any]:
    scripts = root / "sd-scripts"
    scripts.mkdir(parents=True)
    (scripts / "train_network.py").write_text("# preflight looks for this file; the stand-in does the work\n")
    tokenizers = root / "tokenizers"
    build_tokenizer_cache(tokenizers, gzip.compress(b"bpe_simple_vocab_16e6.txt#version: 0.2\nh e\nhe l</w>\n"))
    return {
        "sd_scripts_dir": scripts,
        "sd_scripts_python": Path(sys.executable),
        "sd_scripts_launcher": STANDIN_TRAINER,
        "sd_scripts_tokenizer_cache_dir": tokenizers,
        "training_cpu": True,
    }


async def start_comfyui(root: Path, models: Path, service_url: str, comfy_dir: str, python: str) -> LocalComfyUI:
    """ComfyUI in a base directory of its own, the pack linked in, ``ATELIER_URL`` set to the service."""
    base = root / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "atelier_nodes").symlink_to(PACK, target_is_directory=True)
    config = LocalComfyConfig(
        comfy_dir=Path(comfy_dir),
        python=Path(python),
        models_dir=models,
        var_dir=root / "comfy-var",
        cpu=True,
        extra_args=(
            "--base-directory", str(base),
            "--database-url", f"sqlite:///{root / 'comfyui.db'}",
            "--disable-api-nodes",
        ),
        start_timeout_s=300.0,
        env={**os.environ, "ATELIER_URL": service_url},
    )  # fmt: skip
    local = LocalComfyUI(config)
    await local.start()
    return local


@asynccontextmanager
async def editor_stack(root: Path, database_url: str, comfy_dir: str, python: str) -> AsyncIterator[EditorStack]:
    """Start ComfyUI, then the service on the port ComfyUI was told; stop both afterwards."""
    models = models_store(root / "models")
    port = free_port()
    service_url = f"http://127.0.0.1:{port}"
    comfy = await start_comfyui(root, models, service_url, comfy_dir, python)
    settings = Settings(
        database_url=database_url,
        var_dir=root / "var",
        storage_url=f"file://{root / 'var' / 'storage'}",
        models_dir=models,
        comfyui_urls=[comfy.url],
        comfyui_dir=None,
        auth="apikey",
        heartbeat_interval_s=0.5,
        idle_poll_s=0.5,
        **_training_settings(root),
    )
    runner = web.AppRunner(create_app(settings), handler_cancellation=True, access_log=None, shutdown_timeout=5)
    await runner.setup()
    engine = create_engine(database_url, pool_size=2)
    try:
        key = await issue_key(engine, f"editor-{uuid.uuid4().hex[:6]}")
        stack = EditorStack(comfy, service_url, settings, engine, key.secret, root / "base", runner)
        await stack.listen()
        yield stack
    finally:
        await runner.cleanup()
        await engine.dispose()
        await comfy.stop()


async def train_lora(
    http: aiohttp.ClientSession, stack: EditorStack, name: str, trigger: str, **training: Any
) -> dict[str, Any]:
    """A subject with two photos and a finished stand-in training; the ``job.artifact`` event of its LoRA."""
    from tests.support.sse import collect

    consent = {"confirmed": True, "subject_is_adult": True, "statement": "engine test"}
    body: dict[str, Any] = {"name": name, "kind": "person", "trigger_word": trigger, "consent": consent}
    async with http.post(f"{stack.service_url}/v1/subjects", json=body, headers=stack.headers) as response:
        assert response.status == 201, await response.text()
        subject = await response.json()
    form = aiohttp.FormData()
    for index, data in enumerate(face_photos()[:2]):
        form.add_field("file", data, filename=f"p{index}.jpg", content_type="image/jpeg")
    url = f"{stack.service_url}/v1/subjects/{subject['id']}/photos"
    async with http.post(url, data=form, headers=stack.headers) as response:
        assert response.status == 200, await response.text()
    body = {"subject_id": subject["id"], "base_model": CHECKPOINT, "steps": 6, "resolution": 64, **training}
    async with http.post(f"{stack.service_url}/v1/trainings", json=body, headers=stack.headers) as response:
        assert response.status == 202, await response.text()
        accepted = await response.json()
    events = await collect(http, stack.service_url + accepted["events_url"], headers=stack.headers)
    assert events[-1].event == "job.succeeded", events[-1]
    [lora] = [e.data for e in events if e.event == "job.artifact" and e.data["kind"] == "lora"]
    return lora
