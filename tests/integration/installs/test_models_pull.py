"""`atelier models pull|list|remove`: the demo model, a local file, and hub downloads from a local hub.

The hub stand-in serves the download routes huggingface_hub uses (``HEAD``/``GET
/{repo}/resolve/{revision}/{file}`` with ``X-Repo-Commit``, ``X-Linked-Etag`` = the file's sha256 and
``X-Linked-Size``, ranges on GET); ``HF_ENDPOINT`` points the CLI at it. It can cut the first download
in the middle and can announce a wrong sha256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from aiohttp import web
from safetensors.numpy import save_file

from orchestrator.modelfiles import family_of, tensor_names

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COMMIT = "0123456789abcdef0123456789abcdef01234567"


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


@dataclass
class FakeHub:
    """Files by (repo, filename); what the clients asked for."""

    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    announced: dict[tuple[str, str], str] = field(default_factory=dict)
    cut_first_download: bool = False
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        key = (f"{request.match_info['owner']}/{request.match_info['name']}", request.match_info["file"])
        if key not in self.files:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        body = self.files[key]
        sha = self.announced.get(key, hashlib.sha256(body).hexdigest())
        headers = {"X-Repo-Commit": COMMIT, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body)),
                   "ETag": f'"{sha}"', "Accept-Ranges": "bytes"}  # fmt: skip
        if request.method == "HEAD":
            return web.Response(status=200, headers={**headers, "Content-Length": str(len(body))})
        requested = request.headers.get("Range")
        self.ranges.append(requested)
        start = int(requested.split("=")[1].split("-")[0]) if requested else 0
        chunk = body[start:]
        status = 206 if requested else 200
        if requested:
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        response = web.StreamResponse(status=status, headers={**headers, "Content-Length": str(len(chunk))})
        await response.prepare(request)
        if self.cut_first_download and len(self.ranges) == 1:
            await response.write(chunk[: len(chunk) // 2])
            assert request.transport is not None
            request.transport.close()  # what was written is flushed, then the connection drops mid-body
            return response
        await response.write(chunk)
        await response.write_eof()
        return response


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    """A hub stand-in on a free loopback port."""
    fake = FakeHub()
    app = web.Application()
    app.router.add_route("*", "/{owner}/{name}/resolve/{revision}/{file}", fake.resolve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


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
