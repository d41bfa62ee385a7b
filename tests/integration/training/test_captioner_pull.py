"""A captioner named by hub id: pulled into the models store from a (local, mimicking) hub, then described with."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from orchestrator.settings import Settings
from orchestrator.training.captioners import (
    CaptionerUnavailable,
    captioner_from_settings,
    pull_captioner,
    resolve_captioner_dir,
    store_dir,
)
from tests.support.captioning import build_blip
from tests.support.fake_hub import COMMIT, FakeHub, serving
from tests.unit.trainer.images import astronaut


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A tiny BLIP's files as a hub repository holds them, plus pickled weights that must not be pulled."""
    model = build_blip(tmp_path_factory.mktemp("hub-blip"))
    files = {path.name: path.read_bytes() for path in model.iterdir() if path.is_file()}
    files["pytorch_model.bin"] = b"pickled weights are never pulled"
    return files


async def test_a_hub_id_is_pulled_into_the_store_and_loaded_from_there(
    hub_files: dict[str, bytes], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    settings = Settings(models_dir=models, var_dir=tmp_path / "var", captioner="acme/tiny-blip")
    with pytest.raises(CaptionerUnavailable, match="not in the models store"):
        captioner_from_settings(settings)
    async with serving(FakeHub.of_repository("acme/tiny-blip", hub_files)) as hub:
        pulled = await asyncio.to_thread(pull_captioner, "acme/tiny-blip", models, endpoint=hub.url)
    assert pulled == store_dir(models, "acme/tiny-blip") == models / "captioners" / "acme--tiny-blip"
    assert ("GET", f"/api/models/acme/tiny-blip/tree/{COMMIT}") in hub.requests
    assert not any(path.endswith("pytorch_model.bin") for _, path in hub.requests)
    assert not (pulled / "pytorch_model.bin").exists()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (pulled / name).read_bytes() == hub_files[name]
    assert resolve_captioner_dir("acme/tiny-blip", models) == pulled
    captioner = captioner_from_settings(settings.model_copy(update={"captioner_device": "cpu"}))
    assert captioner is not None
    assert captioner.name == "acme/tiny-blip"
    [text] = await asyncio.to_thread(captioner.describe_batch, [astronaut()])
    assert text.startswith("word")


async def test_a_missing_repository_or_a_model_we_cannot_run_is_reported(tmp_path: Path) -> None:
    async with serving(FakeHub.of_repository("acme/tiny-blip", {"config.json": b'{"model_type": "bert"}'})) as hub:
        with pytest.raises(CaptionerUnavailable, match="cannot pull acme/other"):
            await asyncio.to_thread(pull_captioner, "acme/other", tmp_path, endpoint=hub.url)
        with pytest.raises(CaptionerUnavailable, match="'bert' model"):
            await asyncio.to_thread(pull_captioner, "acme/tiny-blip", tmp_path, endpoint=hub.url)


def test_specs_that_are_neither_directories_nor_hub_ids(tmp_path: Path) -> None:
    with pytest.raises(CaptionerUnavailable, match=r"neither a directory, a hub id .* known captioner \(blip-base"):
        resolve_captioner_dir("not a model", tmp_path)
    with pytest.raises(ValueError, match="not a hub id"):
        store_dir(tmp_path, "../escape")
    assert resolve_captioner_dir(str(tmp_path), tmp_path / "models") == tmp_path


async def _models_cli(args: list[str], models: Path, hub_url: str) -> tuple[int, str, str]:
    env = {**os.environ, "ATELIER_MODELS_DIR": str(models), "HF_ENDPOINT": hub_url, "HF_HOME": str(models / ".hf")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "models", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_atelier_models_pull_knows_captioners_by_name_and_by_repository(
    hub_files: dict[str, bytes], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    async with serving(FakeHub.of_repository("Salesforce/blip-image-captioning-base", hub_files)) as hub:
        code, out, err = await _models_cli(["pull", "blip-base"], models, hub.url)
        assert code == 0, err
    pulled = models / "captioners" / "Salesforce--blip-image-captioning-base"
    assert "blip-base" in out
    assert "ATELIER_CAPTIONER=blip-base" in err
    record = json.loads((models / "pulled.json").read_text())["blip-base"]
    by_name = {item["filename"]: item for item in record["files"]}
    assert by_name["model.safetensors"]["sha256"] == hashlib.sha256(hub_files["model.safetensors"]).hexdigest()
    assert "pytorch_model.bin" not in by_name
    assert not (models / "catalog.yaml").exists()  # a captioner is no base model
    captioner = captioner_from_settings(Settings(models_dir=models, captioner="blip-base", captioner_device="cpu"))
    assert captioner is not None
    assert captioner.model_dir == pulled
    [text] = await asyncio.to_thread(captioner.describe_batch, [astronaut()])
    assert text.startswith("word")
    code, out, _ = await _models_cli(["remove", "blip-base"], models, hub.url)
    assert code == 0
    assert not (pulled / "model.safetensors").exists()
    async with serving(FakeHub.of_repository("acme/tiny-blip", hub_files)) as hub:
        code, _, err = await _models_cli(["pull", "acme/tiny-blip", "--captioner"], models, hub.url)
        assert code == 0, err
        code, _, err = await _models_cli(["pull", "acme/missing", "--captioner"], models, hub.url)
        assert code == 1
        assert "acme/missing" in err
    assert (models / "captioners" / "acme--tiny-blip" / "config.json").is_file()
