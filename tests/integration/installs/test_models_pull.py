"""`atelier models pull|list|remove`: the demo model, a local file, and hub downloads from a local hub.

The hub stand-in (tests/support/fake_hub.py) is where ``HF_ENDPOINT`` points the CLI; here it also cuts
the first download in the middle and announces a wrong sha256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file

from orchestrator.modelfiles import family_of, tensor_names
from tests.support.fake_hub import COMMIT, FakeHub, serving

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def sd15_like_file(path: Path, size_kb: int = 256) -> Path:
    """A small safetensors file whose tensor names say SD1.5 (about ``size_kb`` / 2 KB)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    save_file(
        {
            "model.diffusion_model.input_blocks.0.0.weight": rng.standard_normal(size_kb * 128).astype(np.float32),
            "cond_stage_model.transformer.text_model.final_layer_norm.weight": np.ones(8, dtype=np.float32),
        },
        str(path),
    )
    return path


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    """A hub stand-in on a free loopback port, holding nothing until a test adds files."""
    async with serving(FakeHub()) as fake:
        yield fake


async def _models(args: list[str], models: Path, hub_url: str = "http://127.0.0.1:9") -> tuple[int, str, str]:
    env = {**os.environ, "ATELIER_MODELS_DIR": str(models), "HF_ENDPOINT": hub_url, "HF_HOME": str(models / ".hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "models", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    return proc.returncode or 0, out.decode(), err.decode()


def _catalog(models: Path) -> dict[str, dict[str, str]]:
    return yaml.safe_load((models / "catalog.yaml").read_text())


async def test_pull_demo_makes_the_random_model_and_catalogs_it(tmp_path: Path) -> None:
    models = tmp_path / "models"
    code, out, err = await _models(["pull", "demo"], models)
    assert code == 0, err
    checkpoint = models / "checkpoints" / "sd15-slim-random.safetensors"
    assert family_of(tensor_names(checkpoint)) == "sd15"
    assert _catalog(models)["demo"] == {"family": "sd15", "checkpoint": "sd15-slim-random.safetensors"}
    assert "noise" in err, "it says its images are noise"
    record = json.loads((models / "pulled.json").read_text())["demo"]["files"][0]
    assert record["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    code, out, _ = await _models(["list", "--json"], models)
    assert [row["name"] for row in json.loads(out)] == ["demo"]
    code, out, _ = await _models(["remove", "demo"], models)
    assert code == 0
    assert not checkpoint.exists()
    assert "demo" not in _catalog(models)


async def test_pull_from_a_local_file_records_its_sha256_and_family(tmp_path: Path) -> None:
    source = sd15_like_file(tmp_path / "downloads" / "my-model.safetensors")
    models = tmp_path / "models"
    code, _, err = await _models(["pull", "mine", "--from", str(source)], models)
    assert code == 0, err
    stored = models / "checkpoints" / "my-model.safetensors"
    assert stored.read_bytes() == source.read_bytes()
    assert _catalog(models)["mine"] == {"family": "sd15", "checkpoint": "my-model.safetensors"}
    code, _, err = await _models(["pull", "other", "--from", str(source), "--sha256", "0" * 64], models)
    assert code == 1
    assert "sha256 mismatch" in err
    code, _, err = await _models(["pull", "nothing", "--from", str(tmp_path / "absent.safetensors")], models)
    assert code == 1
    assert "no such file" in err


async def test_hub_pull_resumes_after_a_cut_connection(tmp_path: Path, hub: FakeHub) -> None:
    # 24 MB: huggingface_hub writes in 10 MB chunks, so a cut at 12 MB leaves a part to resume from
    body = sd15_like_file(tmp_path / "src" / "model.safetensors", size_kb=48 * 1024).read_bytes()
    hub.files[("someone/some-model", "model.safetensors")] = body
    hub.cut_first_download = True
    models = tmp_path / "models"
    code, _, err = await _models(["pull", "someone/some-model:model.safetensors"], models, hub.url)
    assert code == 0, err
    assert hub.ranges[0] is None
    assert len(hub.ranges) == 2, err
    assert hub.ranges[1] is not None, err
    resumed_at = int(hub.ranges[1].split("=")[1].split("-")[0])
    assert 0 < resumed_at < len(body), "the second request asked only for the rest"
    assert (models / "checkpoints" / "model.safetensors").read_bytes() == body
    record = json.loads((models / "pulled.json").read_text())["model"]["files"][0]
    assert record["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["origin"] == f"hf://someone/some-model@{COMMIT}/model.safetensors"
    assert _catalog(models)["model"]["family"] == "sd15"
    hub.ranges.clear()
    code, _, err = await _models(["pull", "someone/some-model:model.safetensors"], models, hub.url)
    assert code == 0, err
    assert hub.ranges == [], "already in the store: nothing downloaded"


async def test_hub_pull_with_a_sha256_mismatch_fails_and_keeps_nothing(tmp_path: Path, hub: FakeHub) -> None:
    key = ("someone/bad-model", "bad.safetensors")
    hub.files[key] = sd15_like_file(tmp_path / "src" / "bad.safetensors").read_bytes()
    hub.announced[key] = "f" * 64
    models = tmp_path / "models"
    code, _, err = await _models(["pull", "someone/bad-model:bad.safetensors"], models, hub.url)
    assert code == 1
    assert "sha256 mismatch" in err
    assert not (models / "checkpoints" / "bad.safetensors").exists()
    assert not (models / "catalog.yaml").exists()


async def test_unreachable_hub_and_unknown_names_are_clear(tmp_path: Path, hub: FakeHub) -> None:
    models = tmp_path / "models"
    code, _, err = await _models(["pull", "sd15"], models)  # HF_ENDPOINT: a port nobody listens on
    assert code == 3, err
    assert "v1-5-pruned-emaonly.safetensors" in err
    code, _, err = await _models(["pull", "someone/missing:nope.safetensors"], models, hub.url)
    assert code == 1
    assert "someone/missing:nope.safetensors" in err
    code, _, err = await _models(["pull", "not-a-model"], models)
    assert code == 1
    assert "no known model" in err
