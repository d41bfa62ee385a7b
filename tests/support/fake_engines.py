"""Local stand-ins for the engines' upstream repositories and for the packages they install.

The upstream repositories and PyTorch's indexes cannot be reached from CI, so installer tests point
``atelier engines install --source`` at a small git repository built here, laid out like the engine (a
``requirements.txt``, a ``main.py``, a ``custom_nodes/`` folder), and make pip take every package from a
folder of wheels built here (``PIP_NO_INDEX``, ``PIP_FIND_LINKS``): fake ``torch``, ``torchvision``,
``torchaudio`` (importable, with a version), ``open-clip-torch`` (carrying a small CLIP BPE file), and
whatever a test's requirements name. A requirement can also be a local package whose in-tree build
backend blocks until told to go on, so that a test can interrupt an install in the middle of a step.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

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


def engine_repo(folder: Path, requirements: list[str]) -> Path:
    """A git repository laid out like an engine checkout, with one commit; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text("".join(line + "\n" for line in requirements))
    (folder / "main.py").write_text("print('fake engine')\n")
    (folder / "custom_nodes").mkdir(exist_ok=True)
    (folder / "custom_nodes" / "README").write_text("custom nodes go here\n")
    (folder / "README.md").write_text(textwrap.dedent("A stand-in for an engine's repository (tests only).\n"))
    commit(folder, "first")
    return folder


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
