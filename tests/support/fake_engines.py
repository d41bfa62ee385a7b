"""Local stand-ins for the engines' upstream repositories and for the packages they install.

The upstream repositories and PyTorch's indexes cannot be reached from CI, so installer tests point
``atelier engines install --source`` at a small git repository built here, laid out like the engine (a
``requirements.txt``, a ``main.py``, a ``custom_nodes/`` folder), and make pip take every package from a
folder of wheels built here (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``): fake ``torch``, ``torchvision``,
``torchaudio`` (importable, with a version), ``open-clip-torch`` (carrying a small CLIP BPE file), and
whatever a test's requirements name. A requirement can also be a local package whose in-tree build
backend blocks until told to go on, so that a test can interrupt an install in the middle of a step.

``comfyui_mimic`` and ``sd_scripts_mimic`` go further, for the first run that installs and then uses the
engines: the mimic's ComfyUI ``main.py`` runs the ComfyUI stand-in in the installed venv, and the mimic of
sd-scripts holds the scripts the service checks for (the sd-scripts stand-in trains as the launcher).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import subprocess
import sysconfig
import textwrap
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_MERGES = [("i", "n"), ("t", "h"), ("a", "n</w>"), ("th", "e</w>"), ("in", "g</w>")]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest},{len(data)}"


def build_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-Python wheel of distribution ``name`` holding ``files`` (paths inside site-packages)."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: atelier-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = "".join(f"{path},{_record_hash(data)}\n" for path, data in contents.items()) + f"{info}/RECORD,,\n"
    contents[f"{info}/RECORD"] = record.encode()
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return wheel


def bpe_bytes() -> bytes:
    """A tiny CLIP merges file in the real format."""
    text = "bpe_simple_vocab_16e6.txt#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in TINY_MERGES)
    return gzip.compress(text.encode())


def package_index(folder: Path) -> Path:
    """Wheels for torch, torchvision, torchaudio, open-clip-torch and a plain requirement ``fake-engine-dep``."""
    for module in ("torch", "torchvision", "torchaudio"):
        build_wheel(folder, module, "0.0.1", {f"{module}/__init__.py": b'__version__ = "0.0.1+fake"\n'})
    build_wheel(folder, "open-clip-torch", "0.0.1",
                {"open_clip/__init__.py": b"", "open_clip/bpe_simple_vocab_16e6.txt.gz": bpe_bytes()})  # fmt: skip
    build_wheel(folder, "fake-engine-dep", "1.0", {"fake_engine_dep/__init__.py": b"VALUE = 1\n"})
    return folder


BLOCKING_BACKEND = '''
"""An in-tree build backend that blocks in build_wheel until the file RELEASE exists (tests interrupt there)."""
import os, pathlib, time, zipfile

HERE = pathlib.Path(__file__).parent
STARTED, RELEASE = HERE / "build-started", HERE / "release"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    STARTED.write_text(str(os.getpid()))
    while not RELEASE.exists():
        time.sleep(0.05)
    name = "slow_build_dep-1.0-py3-none-any.whl"
    info = "slow_build_dep-1.0.dist-info"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as whl:
        whl.writestr("slow_build_dep/__init__.py", "")
        whl.writestr(info + "/METADATA", "Metadata-Version: 2.1\\nName: slow-build-dep\\nVersion: 1.0\\n")
        wheel_file = "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        whl.writestr(info + "/WHEEL", wheel_file)
        whl.writestr(info + "/RECORD", "")
    return name
'''


def blocking_package(folder: Path) -> Path:
    """A local package whose build blocks until ``folder/release`` exists (``folder/build-started`` says it began)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "backend.py").write_text(BLOCKING_BACKEND)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "slow-build-dep"\nversion = "1.0"\n'
    )
    return folder


def engine_repo(folder: Path, requirements: list[str], files: dict[str, str] | None = None) -> Path:
    """A git repository laid out like an engine checkout (``files`` on top), with one commit; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("".join(line + "\n" for line in requirements))
    (folder / "main.py").write_text("print('fake engine')\n")
    (folder / "custom_nodes").mkdir(exist_ok=True)
    (folder / "custom_nodes" / "README").write_text("custom nodes go here\n")
    (folder / "README.md").write_text(textwrap.dedent("A stand-in for an engine's repository (tests only).\n"))
    for name, text in (files or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    commit(folder, "first")
    return folder


COMFYUI_MAIN = """\
\"\"\"ComfyUI's main.py in a test's mimic of its repository: torch from the engine's own venv, as ComfyUI
imports it, then the ComfyUI stand-in (tests/standin/comfyui), whose own packages (aiohttp, PyYAML) come
from the test's environment, looked up after the venv's.\"\"\"
import runpy
import sys

import torch

print("mimic ComfyUI: torch", torch.__version__, "in", sys.prefix, flush=True)
sys.path.insert(0, {repo!r})
sys.path.extend({site!r})
runpy.run_module("tests.standin.comfyui", run_name="__main__", alter_sys=True)
"""


def comfyui_mimic(folder: Path, requirements: list[str]) -> Path:
    """A repository laid out like ComfyUI whose ``main.py`` runs the ComfyUI stand-in in the engine's venv."""
    site = list(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
    main = COMFYUI_MAIN.format(repo=str(REPO), site=site)
    return engine_repo(folder, requirements, {"main.py": main})


def sd_scripts_mimic(folder: Path, requirements: list[str]) -> Path:
    """A repository laid out like kohya sd-scripts: the training scripts the service looks for, its
    ``library/`` and ``networks/`` packages. The training itself is the sd-scripts stand-in
    (tests/standin/fake_sd_trainer.py, run as the launcher with the engine's Python)."""
    script = "# a mimic of sd-scripts: the stand-in trainer runs in its place\n"
    files = {name: script for name in ("train_network.py", "sdxl_train_network.py", "flux_train_network.py")}
    files |= {"library/__init__.py": "", "networks/__init__.py": "", "networks/lora.py": script}
    return engine_repo(folder, requirements, files)


def commit(folder: Path, message: str) -> str:
    """Commit everything in ``folder`` (a git repository is made there when needed); returns the commit."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
    if not (folder / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(folder)], check=True, env=env)
    subprocess.run(["git", "-C", str(folder), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(folder), "commit", "-q", "-m", message], check=True, env=env)
    out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def offline_pip_env(index: Path) -> dict[str, str]:
    """Environment that makes pip install only from ``index`` (no package index, no machine configuration)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index), "PIP_CONFIG_FILE": os.devnull}
