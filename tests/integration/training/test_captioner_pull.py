"""A captioner named by hub id: pulled into the models store from a (local, mimicking) hub, then described with."""

from __future__ import annotations

import asyncio
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
from tests.support.captioning import build_tiny_blip
from tests.support.fake_hub import COMMIT, FakeHub, serving
from tests.unit.trainer.images import astronaut


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A tiny BLIP's files as a hub repository holds them, plus pickled weights that must not be pulled."""
    model = build_tiny_blip(tmp_path_factory.mktemp("hub-blip"))
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
    async with serving(FakeHub("acme/tiny-blip", hub_files)) as hub:
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
    async with serving(FakeHub("acme/tiny-blip", {"config.json": b'{"model_type": "bert"}'})) as hub:
        with pytest.raises(CaptionerUnavailable, match="cannot pull acme/other"):
            await asyncio.to_thread(pull_captioner, "acme/other", tmp_path, endpoint=hub.url)
        with pytest.raises(CaptionerUnavailable, match="'bert' model"):
            await asyncio.to_thread(pull_captioner, "acme/tiny-blip", tmp_path, endpoint=hub.url)


def test_specs_that_are_neither_directories_nor_hub_ids(tmp_path: Path) -> None:
    with pytest.raises(CaptionerUnavailable, match="neither a directory nor a hub id"):
        resolve_captioner_dir("not a model", tmp_path)
    with pytest.raises(ValueError, match="not a hub id"):
        store_dir(tmp_path, "../escape")
    assert resolve_captioner_dir(str(tmp_path), tmp_path / "models") == tmp_path
