# SPDX-License-Identifier: Apache-2.0
"""The local ComfyUI supervisor, with the stand-in's command line as ``ComfyUI/main.py``."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from orchestrator.comfy import LocalComfyError
from orchestrator.comfy.local import LocalComfyConfig, LocalComfyUI

REPO = Path(__file__).resolve().parents[3]


def _fake_comfy(tmp: Path, body: str | None = None) -> Path:
    comfy = tmp / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(
        body
        or (
            "import runpy, sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "runpy.run_module('tests.standin.comfyui', run_name='__main__', alter_sys=True)\n"
        )
    )
    return comfy


def _config(tmp: Path, comfy: Path) -> LocalComfyConfig:
    models = tmp / "models"
    (models / "checkpoints").mkdir(parents=True)
    (models / "checkpoints" / "base.safetensors").write_bytes(b"x")
    (models / "loras" / "alice" / "v1").mkdir(parents=True)
    (models / "loras" / "alice" / "v1" / "alice.safetensors").write_bytes(b"y")
    return LocalComfyConfig(
        comfy_dir=comfy,
        python=Path(sys.executable),
        models_dir=models,
        var_dir=tmp / "var",
        cpu=True,
        start_timeout_s=60.0,
        stop_timeout_s=5.0,
        restart_backoff_initial_s=0.05,
        restart_backoff_max_s=0.2,
    )


@pytest.mark.slow
async def test_local_comfyui_starts_maps_models_restarts_and_stops(tmp_path: Path) -> None:
    local = LocalComfyUI(_config(tmp_path, _fake_comfy(tmp_path)))
    url = await local.start()
    try:
        async with aiohttp.ClientSession() as http:
            stats = await (await http.get(url + "/system_stats")).json()
            assert "--cpu" in stats["system"]["argv"]
            assert await (await http.get(url + "/models/checkpoints")).json() == ["base.safetensors"]
            assert await (await http.get(url + "/models/loras")).json() == ["alice/v1/alice.safetensors"]
            assert (tmp_path / "var" / "comfyui" / "output").is_dir()

            first_pid = local.pid
            assert first_pid is not None
            os.kill(first_pid, signal.SIGKILL)
            await local.wait_started(2, timeout_s=60.0)
            assert local.restarts == 1
            assert local.pid not in (None, first_pid)
            assert (await http.get(url + "/system_stats")).status == 200
    finally:
        pid = local.pid
        await local.stop()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert "starting:" in local.log_path.read_text()


async def test_local_comfyui_that_exits_at_once_fails_to_start(tmp_path: Path) -> None:
    body = "import sys\nprint('no torch here')\nsys.exit(3)\n"
    local = LocalComfyUI(_config(tmp_path, _fake_comfy(tmp_path, body)))
    with pytest.raises(LocalComfyError, match="exited with 3") as caught:
        await local.start()
    assert "no torch here" in str(caught.value)
