# SPDX-License-Identifier: Apache-2.0
"""``atelier engines install|status|update|remove``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any, TextIO

from orchestrator.cli_support import add_setting_flags, settings_from
from orchestrator.engines.installer import InstallError, default_options, install, steps_of
from orchestrator.engines.layout import EngineLayout, engine_status
from orchestrator.engines.specs import ENGINES
from orchestrator.engines.torch_builds import TORCH_BUILDS, TorchBuild, detect_build
from orchestrator.settings import Settings, engine_origin, engines_root


class ConsoleProgress:
    """Step lines (``[3/9] comfyui venv … done (2.1 s)``); on a terminal also the running command's last line."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out
        self.live = out.isatty()
        self._width = shutil.get_terminal_size((100, 20)).columns - 1

    def step(self, engine: str, index: int, total: int, step: str, state: str, detail: str = "") -> None:
        """Print one line per step start and end."""
        self._clear()
        suffix = f" ({detail})" if detail else ""
        self.out.write(f"[{index}/{total}] {engine} {step}: {state}{suffix}\n")
        self.out.flush()

    def output(self, engine: str, line: str) -> None:
        """On a terminal, show the latest output line in place."""
        if self.live and line.strip():
            self.out.write("\r    " + line.strip()[: self._width - 4].ljust(self._width - 4))
            self.out.flush()

    def _clear(self) -> None:
        if self.live:
            self.out.write("\r" + " " * self._width + "\r")


def chosen_build(requested: str) -> TorchBuild:
    """The torch build for ``--torch`` (``auto`` detects)."""
    if requested == "auto":
        return detect_build()
    for build in TORCH_BUILDS:
        if build == requested:
            return build
    raise ValueError(requested)


def _names(target: str) -> list[str]:
    return list(ENGINES) if target == "all" else [target]


def install_engines(settings: Settings, names: list[str], args: argparse.Namespace, *, fresh_ref: bool = False) -> int:
    """Install (or update) each engine; 1 with the failing step named when one fails."""
    build = chosen_build(args.torch or settings.engines_torch)
    progress = ConsoleProgress()
    for name in names:
        spec = ENGINES[name]
        source, ref = engine_origin(settings, name)
        given: dict[str, Any] = {"source": args.source or source, "ref": args.ref or ref}
        given["torch_index"] = args.torch_index
        given["python"] = args.python
        if fresh_ref:
            given["force_steps"] = {"fetch"}
        options = default_options(spec, build, settings.models_dir, **given)
        root = EngineLayout.of(engines_root(settings), name).root
        print(f"{spec.title}: {options.source} at {options.ref[:12]} (torch: {build}) -> {root}")
        try:
            manifest = install(spec, EngineLayout.of(engines_root(settings), name), options, progress)
        except InstallError as exc:
            print(f"atelier engines install: {exc}", file=sys.stderr)
            return 1
        print(f"{spec.title} installed at {manifest['commit'][:12]} (torch {manifest.get('torch_version')})")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    """Install ComfyUI, sd-scripts or both under <var_dir>/engines (resumes where a previous run stopped)."""
    settings = settings_from(args)
    if args.source and args.engine == "all":
        print("atelier engines install: --source names one engine's repository; install them one by one",
              file=sys.stderr)  # fmt: skip
        return 2
    return install_engines(settings, _names(args.engine), args)


def cmd_update(args: argparse.Namespace) -> int:
    """Move installed engines to the pinned commit (or --ref), fetching first; requirements follow."""
    settings = settings_from(args)
    names = [n for n in _names(args.engine) if EngineLayout.of(engines_root(settings), n).src.is_dir()]
    if not names:
        print("atelier engines update: nothing installed; use `atelier engines install`", file=sys.stderr)
        return 1
    return install_engines(settings, names, args, fresh_ref=True)


def cmd_status(args: argparse.Namespace) -> int:
    """What is installed, at which commit, which steps are still to run."""
    settings = settings_from(args)
    report = [engine_status(engines_root(settings), name, steps_of(name)) for name in ENGINES]
    if args.json:
        print(json.dumps({"engines": report, "engines_setting": settings.engines}, indent=2))
        return 0
    for item in report:
        line = f"{item['name']:<11} {item['state']:<9} {item['path']}"
        if item["state"] == "installed":
            pinned = "pinned" if item.get("at_pinned_commit") else f"pinned is {item['pinned_commit'][:12]}"
            line += f"  commit {str(item.get('commit'))[:12]} ({pinned}), torch {item.get('torch_version')}"
        elif item["state"] == "partial":
            line += f"  next step: {item['steps_pending'][0]}"
        print(line)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete an installed engine (its checkout, venv and markers)."""
    settings = settings_from(args)
    for name in _names(args.engine):
        root = EngineLayout.of(engines_root(settings), name).root
        if root.exists():
            shutil.rmtree(root)
            print(f"removed {root}")
        else:
            print(f"{name}: not installed")
    return 0


def _install_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", choices=[*ENGINES, "all"])
    parser.add_argument("--ref", help="commit, tag or branch (default: ATELIER_ENGINES_<NAME>_REF, else pinned)")
    parser.add_argument(
        "--source", help="git URL or local repository (default: ATELIER_ENGINES_<NAME>_SOURCE, else upstream)"
    )
    parser.add_argument("--torch", choices=["auto", *TORCH_BUILDS], help="torch build (default ATELIER_ENGINES_TORCH)")
    parser.add_argument("--torch-index-url", dest="torch_index", help="index to take torch from")
    parser.add_argument("--python", help="Python the engine's venv is made with (default: this one)")
    add_setting_flags(parser, "var_dir", "engines_dir", "models_dir")


def register_engine_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``engines`` and its subcommands."""
    engines = subparsers.add_parser("engines", help="install and manage ComfyUI and sd-scripts")
    sub = engines.add_subparsers(dest="engines_command", required=True)
    for name, func in (("install", cmd_install), ("update", cmd_update)):
        parser = sub.add_parser(name, help=func.__doc__)
        _install_flags(parser)
        parser.set_defaults(func=func)
    status = sub.add_parser("status", help=cmd_status.__doc__)
    status.add_argument("--json", action="store_true", help="machine-readable")
    add_setting_flags(status, "var_dir", "engines_dir")
    status.set_defaults(func=cmd_status)
    remove = sub.add_parser("remove", help=cmd_remove.__doc__)
    remove.add_argument("engine", choices=[*ENGINES, "all"])
    add_setting_flags(remove, "var_dir", "engines_dir")
    remove.set_defaults(func=cmd_remove)
