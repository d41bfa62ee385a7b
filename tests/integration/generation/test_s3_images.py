# SPDX-License-Identifier: Apache-2.0
"""With S3 storage (moto's server on loopback) images are fetched through presigned URLs, and deleted."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import aiohttp

from orchestrator.db.engine import create_engine
from orchestrator.settings import Settings
from tests.integration.conftest import new_caller
from tests.integration.generation.conftest import txt2img
from tests.standin.comfyui import StandinComfyUI
from tests.support.db import wait_for_terminal
from tests.support.service import running_app


async def test_images_come_from_presigned_urls_and_delete_removes_them(
    fresh_database_url: str,
    s3_endpoint: str,
    backends: tuple[StandinComfyUI, StandinComfyUI],
    tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    settings = Settings(
        database_url=fresh_database_url,
        var_dir=tmp_path,
        storage_url="s3://generations/run",
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        models_dir=tmp_path / "models",
        comfyui_urls=[backends[0].url],
        comfyui_dir=None,
        comfyui_python=None,
        heartbeat_interval_s=0.2,
        heartbeat_timeout_s=2.0,
        idle_poll_s=0.2,
    )
    engine = create_engine(fresh_database_url, pool_size=2)
    me = await new_caller(engine, f"s3-{uuid.uuid4().hex[:6]}")
    async with running_app(settings) as (_app, url):
        async with http.post(f"{url}/v1/generations", json=txt2img(), headers=me.headers) as response:
            assert response.status == 202, await response.text()
            job_id = (await response.json())["id"]
        await wait_for_terminal(fresh_database_url, [uuid.UUID(job_id)])
        async with http.get(f"{url}/v1/generations/{job_id}", headers=me.headers) as response:
            generation = await response.json()
        assert generation["status"] == "succeeded", generation
        image_url = f"{url}/v1/generations/{job_id}/images/0"
        async with http.get(image_url, headers=me.headers, allow_redirects=False) as response:
            assert response.status == 302
            presigned = response.headers["Location"]
        assert presigned.startswith(s3_endpoint)
        async with http.get(presigned) as response:
            assert response.status == 200
            assert hashlib.sha256(await response.read()).hexdigest() == generation["images"][0]["sha256"]
        async with http.delete(f"{url}/v1/generations/{job_id}", headers=me.headers) as response:
            assert response.status == 204
        async with http.get(presigned) as response:
            assert response.status == 404
    await engine.dispose()
