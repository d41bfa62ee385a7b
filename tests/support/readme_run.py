"""Run the README's examples against `atelier serve` started the way a user starts it (see tests/support/readme.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.readme import blocks, readme, script
from tests.support.service import free_port, spawn_atelier, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
#: Random-weight checkpoints the README makes are deterministic: keep them between runs (the pull still runs
#: and checks that the file is the one it would make), so that a run does not spend minutes rewriting 2.1 GB.
CACHE = Path.home() / ".cache" / "atelier-tests" / "checkpoints"
CACHED = ("sd15-slim-random.safetensors", "sd15-full-random.safetensors")


def _link(source: Path, target: Path) -> None:
    if source.is_file() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.link(source, target)


@contextlib.contextmanager
def cached_checkpoints(models: Path) -> Iterator[None]:
    """Hard-link cached demo checkpoints into ``models`` before, and new ones into the cache after."""
    for name in CACHED:
        _link(CACHE / name, models / "checkpoints" / name)
    try:
        yield
    finally:
        for name in CACHED:
            _link(models / "checkpoints" / name, CACHE / name)


def atelier_wrapper(workdir: Path) -> None:
    """``.venv/bin/atelier`` in ``workdir`` (the README's path): the ``atelier`` command of this environment
    (the client's, with the server's commands joined), run with this checkout on the path."""
    wrapper = workdir / ".venv" / "bin" / "atelier"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    command = "import sys; from atelier_client.cli import main; sys.argv[0] = 'atelier'; sys.exit(main())"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{command}" "$@"\n')
    wrapper.chmod(0o755)


async def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until /readyz answers 200 (failing fast when the service exits)."""
    await wait_until_answering(f"{base_url}/readyz", exit_code=process.poll, name="the service", timeout_s=timeout_s)


async def run_readme(workdir: Path, service_env: Mapping[str, str], *, ready_timeout_s: float = 300) -> str:
    """Start the service, run the README's script in ``workdir``; returns its output (raises with it on failure)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**service_env, "ATELIER_PORT": str(port), "PYTHONPATH": str(ROOT)}
    models = Path(env["ATELIER_MODELS_DIR"])
    atelier_wrapper(workdir)
    service = spawn_atelier(["serve"], env, workdir / "service.log")
    try:
        await wait_ready(base_url, service, ready_timeout_s)
        text = script(blocks(readme(ROOT)), base_url)
        (workdir / "readme.sh").write_text(text)
        with cached_checkpoints(models):
            done = await asyncio.to_thread(
                subprocess.run, ["bash", str(workdir / "readme.sh")], cwd=workdir, env={**os.environ, **env},
                capture_output=True, text=True,
            )  # fmt: skip
    finally:
        service.terminate()
        service.wait(timeout=60)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        log = (workdir / "service.log").read_text()[-6000:]
        raise AssertionError(
            f"README examples failed (exit {done.returncode}):\n{output[-8000:]}\n--- service log:\n{log}"
        )
    return output
