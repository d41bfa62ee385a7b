"""The transformers captioner on tiny random BLIP and Florence-2 models, loaded through the real loading code."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from PIL import Image

from tests.support.captioning import build_blip, build_florence2
from tests.unit.trainer.images import astronaut, cat, noise_image
from trainer.dataset import Captioner
from trainer.dataset.captioner import CaptionerError, TransformersCaptioner, clean_description, model_type_of

WORDS = re.compile(r"^word\d+( word\d+)*$")


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BLIP captioning model on disk."""
    return build_blip(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def florence_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Florence-2 model on disk."""
    return build_florence2(tmp_path_factory.mktemp("florence2"))


def _images() -> list[Image.Image]:
    return [astronaut(), cat(), noise_image(200, 120, seed=3), astronaut().convert("L")]


@pytest.mark.parametrize("model", ["blip", "florence2"])
def test_describes_each_image_lazily_and_in_order(model: str, request: pytest.FixtureRequest) -> None:
    model_dir: Path = request.getfixturevalue(f"{'blip' if model == 'blip' else 'florence'}_dir")
    assert model_type_of(model_dir) == model
    captioner = TransformersCaptioner(model_dir, name=f"tiny/{model}", device="cpu", batch_size=3, max_new_tokens=6)
    assert isinstance(captioner, Captioner)
    assert not captioner.loaded  # nothing is loaded until the first photos are described
    texts = captioner.describe_batch(_images())
    assert captioner.loaded
    assert len(texts) == 4
    assert all(WORDS.match(text) for text in texts), texts  # the tiny vocabulary's words, no special tokens
    assert all(3 <= len(text.split()) <= 6 for text in texts), texts
    assert captioner.name == f"tiny/{model}"


@pytest.mark.parametrize("model", ["blip", "florence2"])
def test_batch_size_does_not_change_the_descriptions(model: str, request: pytest.FixtureRequest) -> None:
    model_dir: Path = request.getfixturevalue(f"{'blip' if model == 'blip' else 'florence'}_dir")
    one = TransformersCaptioner(model_dir, device="cpu", batch_size=1, max_new_tokens=5)
    four = TransformersCaptioner(model_dir, device="cpu", batch_size=4, max_new_tokens=5)
    assert one.describe_batch(_images()) == four.describe_batch(_images())


def test_threads_share_one_load(blip_dir: Path) -> None:
    captioner = TransformersCaptioner(blip_dir, device="cpu", max_new_tokens=4)
    results: list[list[str]] = []
    barrier = threading.Barrier(2)

    def describe() -> None:
        barrier.wait()
        results.append(captioner.describe_batch([astronaut()]))

    threads = [threading.Thread(target=describe) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert results[0] == results[1]


def test_unsupported_or_missing_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptionerError, match="not a readable model config"):
        TransformersCaptioner(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CaptionerError, match="'bert' model; captioning supports blip, florence2"):
        TransformersCaptioner(tmp_path)
    with pytest.raises(ValueError, match="at least 1"):
        TransformersCaptioner(tmp_path, batch_size=0)


def test_broken_weights_fail_with_a_captioner_error(blip_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in blip_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    captioner = TransformersCaptioner(broken, device="cpu")
    with pytest.raises(CaptionerError, match="cannot load the captioning model"):
        captioner.describe_batch([astronaut()])


def test_cuda_is_refused_where_torch_sees_no_gpu(blip_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(CaptionerError, match="no CUDA device"):
        TransformersCaptioner(blip_dir, device="cuda").load()


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("arafed man in a suit standing in front of a wall.", "man in a suit standing in front of a wall"),
        ("there is a  dog\non the grass", "a dog on the grass"),
        ("  a woman with red hair , ", "a woman with red hair"),
        ("araffe woman sitting on a bench", "woman sitting on a bench"),
        ("", ""),
    ],
)
def test_clean_description(raw: str, clean: str) -> None:
    assert clean_description(raw) == clean


def test_clean_description_cuts_long_text_at_a_word() -> None:
    text = clean_description("word " * 200)
    assert len(text) <= 300
    assert text.endswith("word")
