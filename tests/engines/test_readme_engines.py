"""The README's examples with the real engines: the service launches the real ComfyUI and trains with the real
kohya sd-scripts (the same script as tests/integration/test_readme_examples.py runs with the stand-ins).

Runs where the environment points at the engines: ``ATELIER_COMFYUI_DIR``/``_PYTHON`` and
``ATELIER_SD_SCRIPTS_DIR``/``_PYTHON`` (``ATELIER_COMFYUI_CPU``, ``ATELIER_TRAINING_CPU`` and
``ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR`` are passed on when set). ``ATELIER_TEST_SD15_FULL_CHECKPOINT``, when
it is the file `atelier models pull demo-full` makes, saves the README's pull two minutes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.db import scratch_database
from tests.support.readme_run import CACHE, run_readme

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(3600)]

REQUIRED = ("ATELIER_COMFYUI_DIR", "ATELIER_COMFYUI_PYTHON", "ATELIER_SD_SCRIPTS_DIR", "ATELIER_SD_SCRIPTS_PYTHON")
PASSED_ON = (*REQUIRED, "ATELIER_COMFYUI_CPU", "ATELIER_TRAINING_CPU", "ATELIER_SD_SCRIPTS_TOKENIZER_CACHE_DIR")
MISSING = [name for name in REQUIRED if not os.environ.get(name)]
if MISSING:
    pytest.skip(
        f"ENGINE TEST SKIPPED: set {', '.join(REQUIRED)} to run the README's examples with the real ComfyUI and "
        f"sd-scripts (missing: {', '.join(MISSING)})",
        allow_module_level=True,
    )
ENGINES = {name: os.environ[name] for name in PASSED_ON if os.environ.get(name)}  # read before the scrub
FULL = os.environ.get("ATELIER_TEST_SD15_FULL_CHECKPOINT")


@pytest.fixture
def readme_database() -> Iterator[str]:
    """The service's own database."""
    with scratch_database("readme_engines") as url:
        yield url


async def test_the_readme_examples_run_with_the_real_engines(tmp_path: Path, readme_database: str) -> None:
    workdir = tmp_path / "clone"
    workdir.mkdir()
    if FULL and not (CACHE / "sd15-full-random.safetensors").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # another file system: the README's pull makes it
            os.link(FULL, CACHE / "sd15-full-random.safetensors")
    env = {
        **ENGINES,
        "ATELIER_DATABASE_URL": readme_database,
        "ATELIER_AUTH": "disabled",
        "ATELIER_ENGINES": "external",
        "ATELIER_VAR_DIR": str(workdir / "var"),
        "ATELIER_MODELS_DIR": str(workdir / "models"),
        "ATELIER_STORAGE_URL": f"file://{workdir / 'var' / 'storage'}",
    }
    output = await run_readme(workdir, env, ready_timeout_s=600)
    for image in ("image.png", "fox-0.png"):
        assert (workdir / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"the examples saved {image}"
    assert '"name":"shapes"' in output.replace(" ", "")
