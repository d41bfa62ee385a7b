"""The README's examples run as written against `atelier serve` with the ComfyUI and sd-scripts stand-ins.

The service launches "ComfyUI" as its supervised local instance (a checkout whose main.py is the stand-in,
which lists our models store like ComfyUI does) and trains with the sd-scripts stand-in; the examples pull
the demo models, make photos, train a LoRA and generate with it. tests/engines/test_readme_engines.py runs
the same examples with the real engines.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.db import scratch_database
from tests.support.readme import blocks, problems, readme
from tests.support.readme_run import ROOT, run_readme
from trainer.tokenizer_cache import build_tokenizer_cache

STANDIN_TRAINER = ROOT / "tests" / "standin" / "fake_sd_trainer.py"
TINY_BPE_MERGES = b"bpe_simple_vocab_16e6.txt#version: 0.2\nh e\nhe l</w>\n"


def test_every_example_runs_or_says_why_not() -> None:
    text = readme(ROOT)
    assert problems(text) == []
    found = blocks(text)
    assert sum(b.runnable and b.skip_reason is None for b in found) >= 5
    for block in found:
        if block.runnable and block.skip_reason is not None:
            sys.stderr.write(f"README line {block.line}: not run — {block.skip_reason}\n")


def test_a_marker_needs_a_reason_and_a_runnable_block() -> None:
    bad = (
        "<!-- readme-test: not run -->\n```sh\necho hi\n```\n\n"
        "<!-- readme-test: not run — data -->\n```yaml\na: 1\n```\n"
    )
    assert len(problems(bad)) == 2
    stray = "<!-- readme-test: not run — nothing below -->\n\ntext\n\n\n\n```sh\necho\n```\n"
    assert any("not right above" in p for p in problems(stray))


@pytest.fixture
def readme_database() -> Iterator[str]:
    """The service's own database."""
    with scratch_database("readme") as url:
        yield url


def standin_engines(root: Path) -> dict[str, str]:
    """A ComfyUI checkout whose main.py is the stand-in, and sd-scripts as the stand-in trainer."""
    comfy = root / "ComfyUI"
    comfy.mkdir(parents=True)
    (comfy / "main.py").write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "runpy.run_module('tests.standin.comfyui', run_name='__main__', alter_sys=True)\n"
    )
    scripts = root / "sd-scripts"
    scripts.mkdir()
    (scripts / "train_network.py").write_text("# the stand-in trainer does the work\n")
    tokenizers = root / "tokenizers"
    build_tokenizer_cache(tokenizers, gzip.compress(TINY_BPE_MERGES))
    return {
        "ATELIER_COMFYUI_DIR": str(comfy),
        "ATELIER_COMFYUI_PYTHON": sys.executable,
        "ATELIER_SD_SCRIPTS_DIR": str(scripts),
        "ATELIER_SD_SCRIPTS_PYTHON": sys.executable,
        "ATELIER_SD_SCRIPTS_LAUNCHER": str(STANDIN_TRAINER),
        "ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR": str(tokenizers),
    }


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_the_readme_examples_run_with_the_stand_ins(tmp_path: Path, readme_database: str) -> None:
    workdir = tmp_path / "clone"
    workdir.mkdir()
    env = {
        **standin_engines(tmp_path / "engines"),
        "ATELIER_DATABASE_URL": readme_database,
        "ATELIER_AUTH": "disabled",
        "ATELIER_ENGINES": "external",
        "ATELIER_VAR_DIR": str(workdir / "var"),
        "ATELIER_MODELS_DIR": str(workdir / "models"),
        "ATELIER_STORAGE_URL": f"file://{workdir / 'var' / 'storage'}",
        "ATELIER_TRAINING_CPU": "true",
    }
    output = await run_readme(workdir, env)
    assert "::: README line" in output
    for image in ("image.png", "fox-0.png"):
        assert (workdir / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"the examples saved {image}"
    assert '"name":"shapes"' in output.replace(" ", ""), "the LoRA the walkthrough trained is in the registry"
    assert "job.succeeded" in output
