"""`make run`'s first run where upstream cannot be reached (as on CI): the service serves, /readyz says what
failed and how to retry, and the default model falls back to the demo model, saying so.

The engines' upstream repositories are redirected to a path that does not exist (git's ``url.<base>.insteadOf``
in the environment) and ``HF_ENDPOINT`` to a port nobody listens on, so nothing here reaches the network.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.db import scratch_database
from tests.support.service import free_port, spawn_atelier, wait_until_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def _installing(http: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{base}/readyz") as response:
        body = await response.json()
        return response.status, body["checks"].get("installing", {})


@pytest.fixture
def database_url() -> Iterator[str]:
    """The service's own database."""
    with scratch_database("firstrun") as url:
        yield url


async def test_first_run_without_upstream_fails_clearly_and_serves_what_it_can(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_AUTH": "disabled",
        "ATELIER_PORT": str(port),
        "ATELIER_INSTALL_MISSING": "true",
        "ATELIER_VAR_DIR": str(tmp_path / "var"),
        "ATELIER_MODELS_DIR": str(tmp_path / "models"),
        "ATELIER_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "ATELIER_ENGINES_TORCH": "cpu",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{tmp_path / 'no-such-upstream'}/.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/",
    }
    service = spawn_atelier(["serve"], env, tmp_path / "serve.log")
    try:
        await wait_until_healthy(base, service, timeout_s=120)
        async with aiohttp.ClientSession() as http:
            status, installing = await _installing(http, base)
            assert status == 503, "not ready while installing"
            assert set(installing) == {"comfyui", "sd-scripts", "model sd15"}
            job = {"kind": "noop", "payload": {"steps": 1}}
            async with http.post(f"{base}/v1/jobs", json=job) as response:
                assert response.status == 202, "the API works meanwhile"
            async with asyncio.timeout(300):
                while any(item["state"] in ("waiting", "installing") for item in installing.values()):
                    await asyncio.sleep(0.5)  # the service offers no push for install progress; poll /readyz
                    status, installing = await _installing(http, base)
        assert status == 503
        for engine in ("comfyui", "sd-scripts"):
            assert installing[engine]["state"] == "failed"
            assert "step 'fetch' failed" in installing[engine]["detail"]
            assert f"run `atelier engines install {engine}` again" in installing[engine]["detail"]
        model = installing["model sd15"]
        assert model["state"] == "installed"
        assert "demo" in model["detail"]
        assert "noise" in model["detail"]
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=60)
    log = (tmp_path / "serve.log").read_text()
    assert code == 0, log[-3000:]
    assert "the hub cannot be reached" in log
    assert "atelier engines install comfyui" in log, "the log names the command that retries"
    assert (tmp_path / "models" / "checkpoints" / "sd15-slim-random.safetensors").is_file()
