"""`atelier engines install|status|update|remove` against local stand-ins of the engines' repositories.

Real installs cannot run here (no upstream, no PyTorch index): the repository is a small git repository
laid out like the engine, and pip takes fake torch wheels and the requirements from a local folder
(tests/support/fake_engines.py). What is real: git, venv, pip, the node pack link, the model paths file,
the tokenizer cache, the step markers and the resumption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.engines.layout import EngineLayout
from orchestrator.engines.runtime import with_installed_engines
from orchestrator.settings import Settings
from tests.support.fake_engines import blocking_package, commit, engine_repo, offline_pip_env, package_index

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder pip installs from."""
    return package_index(tmp_path_factory.mktemp("wheels"))


def _atelier(
    args: list[str], var: Path, index: Path, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **offline_pip_env(index), "ATELIER_VAR_DIR": str(var), "ATELIER_MODELS_DIR": str(var / "m")}
    env.update(settings or {})
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True, timeout=500
    )


def _install(engine: str, repo: Path, var: Path, index: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _atelier(["engines", "install", engine, "--source", str(repo), "--torch", "cpu", *extra], var, index)


def _states(output: str) -> dict[str, str]:
    """``{step: state}`` from the progress lines (the last line per step wins)."""
    states = {}
    for line in output.splitlines():
        if line.startswith("[") and "] " in line and ": " in line:
            _, rest = line.split("] ", 1)
            where, state = rest.split(": ", 1)
            states[where.split(" ", 1)[1]] = state.split(" ", 1)[0]
    return states


def test_install_then_a_second_run_changes_nothing(tmp_path: Path, index: Path) -> None:
    repo = engine_repo(tmp_path / "ComfyUI", ["fake-engine-dep==1.0"])
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    var = tmp_path / "var"
    first = _install("comfyui", repo, var, index, "--ref", head)
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(_states(first.stdout).values()) == {"done"}
    layout = EngineLayout.of(var / "engines", "comfyui")
    manifest = layout.manifest()
    assert manifest is not None
    assert manifest["commit"] == head
    assert manifest["torch"] == "cpu"
    assert manifest["torch_version"] == "0.0.1+fake"
    link = layout.src / "custom_nodes" / "atelier_nodes"
    assert link.is_symlink(), "the node pack is linked into ComfyUI"
    assert (link / "__init__.py").is_file()
    paths = yaml.safe_load(layout.model_paths.read_text())
    assert paths["atelier"]["base_path"] == str((var / "m").absolute())
    assert not layout.model_paths.is_relative_to(layout.src), "outside the checkout"
    check = subprocess.run([str(layout.python), "-c", "import fake_engine_dep, torch; print(torch.__version__)"],
                           capture_output=True, text=True)  # fmt: skip
    assert check.stdout.strip() == "0.0.1+fake"

    stamp = layout.manifest_path.stat().st_mtime_ns
    log_size = layout.log_path.stat().st_size
    second = _install("comfyui", repo, var, index, "--ref", head)
    assert second.returncode == 0, second.stderr
    assert set(_states(second.stdout).values()) == {"skipped"}
    assert layout.manifest_path.stat().st_mtime_ns == stamp
    assert layout.log_path.stat().st_size == log_size, "no command ran"

    status = _atelier(["engines", "status", "--json"], var, index)
    report = {item["name"]: item for item in json.loads(status.stdout)["engines"]}
    assert report["comfyui"]["state"] == "installed"
    assert report["comfyui"]["commit"] == head
    assert report["comfyui"]["at_pinned_commit"] is False, "a --ref install is not the pinned commit"
    assert report["sd-scripts"]["state"] == "missing"

    settings = with_installed_engines(Settings(var_dir=var))
    assert settings.comfyui_dir == layout.src
    assert settings.comfyui_python == layout.python
    assert settings.comfyui_cpu, "a CPU torch build runs ComfyUI with --cpu"
    assert with_installed_engines(Settings(var_dir=var, engines="external")).comfyui_dir is None

    (repo / "requirements.txt").write_text("fake-engine-dep==1.0\nopen-clip-torch\n")
    newer = commit(repo, "more requirements")
    updated = _atelier(["engines", "update", "comfyui", "--source", str(repo), "--ref", newer, "--torch", "cpu"],
                       var, index)  # fmt: skip
    assert updated.returncode == 0, updated.stdout + updated.stderr
    states = _states(updated.stdout)
    assert states["fetch"] == states["checkout"] == states["requirements"] == "done"
    assert states["venv"] == states["torch"] == "skipped", "an update keeps the venv and torch"
    assert layout.manifest()["commit"] == newer  # type: ignore[index]

    removed = _atelier(["engines", "remove", "comfyui"], var, index)
    assert removed.returncode == 0
    assert not layout.root.exists()


def test_sd_scripts_install_from_the_configured_source_builds_the_tokenizer_cache(tmp_path: Path, index: Path) -> None:
    repo = engine_repo(tmp_path / "sd-scripts", ["fake-engine-dep"])
    var = tmp_path / "var"
    origin = {"ATELIER_ENGINES_SD_SCRIPTS_SOURCE": str(repo), "ATELIER_ENGINES_SD_SCRIPTS_REF": "main"}
    result = _atelier(["engines", "install", "sd-scripts", "--torch", "cpu"], var, index, origin)
    assert result.returncode == 0, result.stdout + result.stderr
    layout = EngineLayout.of(var / "engines", "sd-scripts")
    manifest = layout.manifest()
    assert manifest is not None
    assert (manifest["source"], manifest["ref"]) == (str(repo), "main"), "the settings name where it comes from"
    assert (layout.tokenizers / "openai_clip-vit-large-patch14" / "vocab.json").is_file()
    settings = with_installed_engines(Settings(var_dir=var))
    assert settings.sd_scripts_dir == layout.src
    assert settings.sd_scripts_tokenizer_cache_dir == layout.tokenizers
    assert settings.training_cpu


def test_a_failing_requirement_names_the_step_and_how_to_retry(tmp_path: Path, index: Path) -> None:
    repo = engine_repo(tmp_path / "ComfyUI", ["fake-engine-dep==1.0", "no-such-package-for-atelier==9.9"])
    var = tmp_path / "var"
    result = _install("comfyui", repo, var, index, "--ref", "main")
    assert result.returncode == 1
    assert "step 'requirements' failed" in result.stderr
    assert "no-such-package-for-atelier" in result.stderr
    assert "atelier engines install comfyui" in result.stderr
    assert "resumes at 'requirements'" in result.stderr
    assert str(EngineLayout.of(var / "engines", "comfyui").log_path) in result.stderr
    status = json.loads(_atelier(["engines", "status", "--json"], var, index).stdout)["engines"][0]
    assert status["state"] == "partial"
    assert status["steps_pending"][0] == "requirements"
    assert with_installed_engines(Settings(var_dir=var)).comfyui_dir is None, "a partial install is not used"


def _wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float = 300) -> None:
    """Until ``path`` exists (the fake build backend writes it), failing fast if the installer ended."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, "the installer ended early"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)  # polling a file another process writes; there is nothing to wait on


def test_an_interrupted_install_resumes_at_the_step_it_was_in(tmp_path: Path, index: Path) -> None:
    slow = blocking_package(tmp_path / "slow")
    repo = engine_repo(tmp_path / "ComfyUI", ["fake-engine-dep==1.0", str(slow)])
    var = tmp_path / "var"
    env = {**os.environ, **offline_pip_env(index), "ATELIER_VAR_DIR": str(var)}
    args = ["engines", "install", "comfyui", "--source", str(repo), "--ref", "main", "--torch", "cpu"]
    with (tmp_path / "interrupted.log").open("w") as out:
        installer = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], env=env, text=True,
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        _wait_for(slow / "build-started", installer)
    finally:
        os.killpg(installer.pid, signal.SIGKILL)
        installer.wait()
    layout = EngineLayout.of(var / "engines", "comfyui")
    assert layout.read_marker("torch") is not None
    assert layout.read_marker("requirements") is None
    assert layout.manifest() is None
    venv_python = layout.python.stat().st_ino
    (slow / "release").write_text("go")
    resumed = _install("comfyui", repo, var, index, "--ref", "main")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    states = _states(resumed.stdout)
    assert [states[s] for s in ("fetch", "checkout", "venv", "torch")] == ["skipped"] * 4
    assert states["requirements"] == "done"
    assert layout.python.stat().st_ino == venv_python, "the venv was kept"
    assert layout.manifest() is not None
