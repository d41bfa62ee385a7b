"""`make run`'s first run when the installs succeed: `atelier serve` with ``ATELIER_INSTALL_MISSING=true``
installs ComfyUI and sd-scripts from the repositories ``ATELIER_ENGINES_*_SOURCE`` names, makes the demo
model (the hub cannot be reached), rebuilds its application on the same socket, and then generates with the
ComfyUI it installed and supervises and trains with the sd-scripts it installed.

The repositories are local mimics of the engines (tests/support/fake_engines.py): ComfyUI's ``main.py``
imports torch from the engine's venv and runs the ComfyUI stand-in; sd-scripts holds the training scripts
the service looks for, and the sd-scripts stand-in trains as the launcher, with the engine's Python. pip
installs from a folder of wheels made here (fake torch builds included), so nothing reaches the network.
"""

from __future__ import annotations

import asyncio
import io
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.devtools.photos import synthetic_photo
from orchestrator.engines.layout import EngineLayout
from tests.support.db import scratch_database, wait_for_terminal
from tests.support.fake_engines import comfyui_mimic, offline_pip_env, package_index, sd_scripts_mimic
from tests.support.service import free_port, spawn_atelier, wait_until_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

STANDIN_TRAINER = Path(__file__).resolve().parents[2] / "standin" / "fake_sd_trainer.py"
DEMO_CHECKPOINT = "sd15-slim-random.safetensors"


@pytest.fixture
def database_url() -> Iterator[str]:
    """The service's own database."""
    with scratch_database("firstrun_ok") as url:
        yield url


def _environment(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    """What `make run` sets, the mimics as the engines' sources, pip and the hub kept offline."""
    wheels = package_index(tmp_path / "wheels")
    return {
        **offline_pip_env(wheels),
        "ATELIER_DATABASE_URL": database_url,
        "ATELIER_AUTH": "disabled",
        "ATELIER_PORT": str(port),
        "ATELIER_INSTALL_MISSING": "true",
        "ATELIER_VAR_DIR": str(tmp_path / "var"),
        "ATELIER_MODELS_DIR": str(tmp_path / "models"),
        "ATELIER_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "ATELIER_ENGINES_TORCH": "cpu",
        "ATELIER_ENGINES_COMFYUI_SOURCE": str(comfyui_mimic(tmp_path / "ComfyUI", ["fake-engine-dep==1.0"])),
        "ATELIER_ENGINES_COMFYUI_REF": "main",
        "ATELIER_ENGINES_SD_SCRIPTS_SOURCE": str(sd_scripts_mimic(tmp_path / "sd-scripts", ["fake-engine-dep"])),
        "ATELIER_ENGINES_SD_SCRIPTS_REF": "main",
        "ATELIER_SD_SCRIPTS_LAUNCHER": str(STANDIN_TRAINER),
        "ATELIER_COMFYUI_EXTRA_ARGS": "--time-scale 0.001",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HOME": str(tmp_path / "hf"),
    }


def _text(path: Path | str) -> str:
    return Path(path).read_text()


async def _readyz(http: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    async with http.get(f"{base}/readyz") as response:
        return response.status, (await response.json())["checks"]


async def _until_ready(http: aiohttp.ClientSession, base: str) -> tuple[dict[str, Any], set[tuple[str, str, str]]]:
    """Poll /readyz until it answers 200; the final checks and every (item, state, detail) seen on the way."""
    seen: set[tuple[str, str, str]] = set()
    async with asyncio.timeout(600):
        while True:
            status, checks = await _readyz(http, base)
            installing = checks.get("installing", {})
            seen |= {(name, item["state"], item.get("detail", "")) for name, item in installing.items()}
            if status == 200:
                return checks, seen
            failed = {name: item for name, item in installing.items() if item["state"] == "failed"}
            assert not failed, failed
            await asyncio.sleep(0.2)  # the service offers no push for install progress; poll /readyz


async def _generate(http: aiohttp.ClientSession, base: str, database_url: str) -> bytes:
    body = {"template": "txt2img", "base_model": "demo", "prompt": "a lighthouse", "width": 64, "height": 64,
            "steps": 2, "seed": 7}  # fmt: skip
    async with http.post(f"{base}/v1/generations", json=body) as response:
        assert response.status == 202, await response.text()
        job = (await response.json())["id"]
    await wait_for_terminal(database_url, [uuid.UUID(job)], timeout_s=120)
    async with http.get(f"{base}/v1/generations/{job}") as response:
        generation = await response.json()
    assert generation["status"] == "succeeded", generation
    async with http.get(f"{base}/v1/generations/{job}/images/0") as response:
        assert response.status == 200
        return await response.read()


async def _train(http: aiohttp.ClientSession, base: str, database_url: str) -> dict[str, Any]:
    subject = {"name": "Shapes", "kind": "style", "trigger_word": "shpz",
               "consent": {"confirmed": True, "subject_is_adult": False, "statement": "pictures I made"}}  # fmt: skip
    async with http.post(f"{base}/v1/subjects", json=subject) as response:
        assert response.status == 201, await response.text()
        subject_id = (await response.json())["id"]
    form = aiohttp.FormData()
    for seed in range(4):
        photo = io.BytesIO()
        synthetic_photo(seed).save(photo, "PNG")
        form.add_field("photo", photo.getvalue(), filename=f"{seed}.png", content_type="image/png")
    async with http.post(f"{base}/v1/subjects/{subject_id}/photos", data=form) as response:
        verdicts = await response.json()
        assert response.status == 200, verdicts
        assert verdicts["accepted"] == 4, verdicts
    training = {"subject_id": subject_id, "base_model": DEMO_CHECKPOINT, "lora_name": "shapes", "preset": "fast",
                "steps": 4, "resolution": 64, "network_dim": 4}  # fmt: skip
    async with http.post(f"{base}/v1/trainings", json=training) as response:
        assert response.status == 202, await response.text()
        job = (await response.json())["id"]
    await wait_for_terminal(database_url, [uuid.UUID(job)], timeout_s=120)
    async with http.get(f"{base}/v1/trainings/{job}") as response:
        result: dict[str, Any] = await response.json()
    return result


async def test_first_run_installs_the_engines_restarts_and_generates_and_trains_with_them(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = spawn_atelier(["serve"], _environment(tmp_path, database_url, port), tmp_path / "serve.log")
    try:
        await wait_until_healthy(base, service, timeout_s=120)
        async with aiohttp.ClientSession() as http:
            status, checks = await _readyz(http, base)
            assert status == 503, "not ready while installing"
            assert set(checks["installing"]) == {"comfyui", "sd-scripts", "model sd15"}
            final, seen = await _until_ready(http, base)
            image = await _generate(http, base, database_url)
            training = await _train(http, base, database_url)
            async with http.get(f"{base}/v1/backends") as response:
                [backend] = (await response.json())["items"]
            status, after = await _readyz(http, base)
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(timeout=60)
    log = _text(tmp_path / "serve.log")
    assert code == 0, log[-3000:]

    engines = tmp_path / "var" / "engines"
    for name in ("comfyui", "sd-scripts"):
        assert final["installing"][name] == {"state": "installed"}
        steps = {detail for item, state, detail in seen if item == name and state == "installing" and detail}
        assert any(f"] {name} " in step for step in steps), f"/readyz named {name}'s install steps: {seen}"
        assert f"first run: [1/8] {name} fetch: running" in log, "the log names the steps as they run"
        manifest = EngineLayout.of(engines, name).manifest()
        assert manifest is not None
        assert manifest["source"] == str(tmp_path / ("ComfyUI" if name == "comfyui" else "sd-scripts"))
    model = final["installing"]["model sd15"]
    assert model["state"] == "installed"
    assert "demo" in model["detail"]
    assert final["comfyui"]["ready"] == 1, "ready only once the application runs the installed ComfyUI"
    assert "first run: installing comfyui, sd-scripts, model sd15 in the background" in log
    assert log.count("engines installed: restarting the application to use them") == 1
    assert log.index("kohya sd-scripts installed") < log.index("engines installed: restarting")
    sd_scripts = EngineLayout.of(engines, "sd-scripts")
    assert f"sd-scripts in {sd_scripts.src} with {sd_scripts.python}" in log, "trains with the installed sd-scripts"

    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert backend["local"]["pid"] is not None, "the installed ComfyUI runs supervised by the service"
    venv = EngineLayout.of(engines, "comfyui").venv
    comfy_log = backend["local"]["log"]
    assert f"mimic ComfyUI: torch 0.0.1+fake in {venv}" in _text(comfy_log), "launched with the engine's own Python"
    assert training["status"] == "succeeded", training
    assert training["lora"]["name"] == "shapes"
    assert status == 200, after
