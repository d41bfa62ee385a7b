# SPDX-License-Identifier: Apache-2.0
"""With ATELIER_COMFYUI_WARMUP_MODEL, a backend counts as ready only once it has run the warm-up prompt."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from orchestrator.settings import Settings
from tests.integration.generation.conftest import SD15, STANDIN_MODELS
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.support.service import running_app


async def test_a_backend_is_ready_after_its_warm_up_prompt_ran(fresh_database_url: str, tmp_path: Path) -> None:
    async with StandinComfyUI(StandinOptions(time_scale=0.001, models=STANDIN_MODELS)) as comfy:
        settings = Settings(
            database_url=fresh_database_url,
            var_dir=tmp_path / "var",
            storage_url=f"file://{tmp_path / 'storage'}",
            models_dir=tmp_path / "models",
            comfyui_urls=[comfy.url],
            comfyui_dir=None,
            comfyui_warmup_model=SD15,
            auth="disabled",
        )
        async with running_app(settings) as (_app, url), aiohttp.ClientSession() as http:
            async with http.get(f"{url}/readyz") as response:
                assert response.status == 200, await response.text()
            async with http.get(f"{url}/v1/backends") as response:
                backends = (await response.json())["items"]
    assert [b["ready"] for b in backends] == [True]
    ran = [entry["prompt"][2] for entry in comfy.executor.history.values()]
    assert len(ran) == 1, "exactly the warm-up prompt ran"
    (graph,) = ran
    loaders = [node["inputs"] for node in graph.values() if node["class_type"] == "CheckpointLoaderSimple"]
    assert loaders == [{"ckpt_name": SD15}]
    assert any(node["inputs"].get("filename_prefix") == "atelier/warm-up" for node in graph.values())
