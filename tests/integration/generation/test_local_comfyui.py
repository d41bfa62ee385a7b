# SPDX-License-Identifier: Apache-2.0
"""ATELIER_COMFYUI_DIR: the service launches a ComfyUI of its own (here the stand-in, run as ComfyUI's
``main.py``), wires the models store in, keeps its folders under var/, and drops its copies of collected files."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import aiohttp
import numpy as np
from safetensors.numpy import save_file

from orchestrator.db.engine import create_engine
from orchestrator.generation.generation_services import GENERATION
from orchestrator.settings import Settings
from tests.integration.conftest import new_caller
from tests.integration.generation.conftest import png_data_url, txt2img
from tests.support.db import wait_for_terminal
from tests.support.service import running_app

REPO = Path(__file__).resolve().parents[3]
CHECKPOINT = "local-sd15.safetensors"


def _fake_comfyui(root: Path) -> Path:
    comfy = root / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "runpy.run_module('tests.standin.comfyui', run_name='__main__', alter_sys=True)\n"
    )
    return comfy


async def test_a_supervised_local_comfyui_generates_and_is_cleaned_after(
    fresh_database_url: str, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    one = np.zeros((1,), dtype=np.float32)
    sd15 = ("cond_stage_model.transformer.text_model.x", "model.diffusion_model.input_blocks.0.0.weight")
    save_file(dict.fromkeys(sd15, one), str(models / "checkpoints" / CHECKPOINT))
    settings = Settings(
        database_url=fresh_database_url,
        var_dir=tmp_path / "var",
        storage_url=f"file://{tmp_path / 'storage'}",
        models_dir=models,
        comfyui_urls=[],
        comfyui_dir=_fake_comfyui(tmp_path),
        comfyui_python=Path(sys.executable),
        comfyui_extra_args="--time-scale 0.001",
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2.0,
        idle_poll_s=0.2,
    )
    engine = create_engine(fresh_database_url, pool_size=2)
    me = await new_caller(engine, f"local-{uuid.uuid4().hex[:6]}")
    async with running_app(settings) as (app, url):
        services = app[GENERATION]
        [local] = services.local
        await local.wait_started(1, timeout_s=60.0)
        await services.backends().pool.check()
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 200, await response.text()
        body = txt2img(base_model=CHECKPOINT, template="img2img", init_image=png_data_url(), width=None, height=None)
        async with http.post(f"{url}/v1/generations", json=body, headers=me.headers) as response:
            assert response.status == 202, await response.text()
            job_id = (await response.json())["id"]
        await wait_for_terminal(fresh_database_url, [uuid.UUID(job_id)])
        async with http.get(f"{url}/v1/generations/{job_id}", headers=me.headers) as response:
            generation = await response.json()
        async with http.get(f"{url}/v1/generations/{job_id}/images/0", headers=me.headers) as response:
            assert response.status == 200
            image = await response.read()
        async with http.get(f"{url}/v1/backends", headers=me.headers) as response:
            [backend] = (await response.json())["items"]
    await engine.dispose()

    assert generation["status"] == "succeeded", generation
    assert generation["base_model"]["family_source"] == "header"
    assert image.startswith(b"\x89PNG")
    home = tmp_path / "var" / "comfyui"
    assert local.home == home
    assert f"base_path: {models.resolve()}" in (home / "extra_model_paths.yaml").read_text()
    assert list((home / "output").rglob("*.png")) == []  # ComfyUI's copy went once ours was stored
    assert list((home / "input").iterdir()) == []
    assert backend["local"]["pid"] is not None
    assert backend["local"]["log"] == str(home / "comfyui.log")
