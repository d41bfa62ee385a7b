"""The import contracts in .importlinter hold, cover every handler module, and break on a forbidden import."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
PACKAGES = ("orchestrator", "comfy_workflows", "trainer", "custom_nodes")
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _config() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def _contract_option(contract: str, option: str) -> set[str]:
    lines = _config()[f"importlinter:contract:{contract}"][option].splitlines()
    return {line.strip() for line in lines if line.strip()}


def _handler_modules() -> set[str]:
    """Modules that declare routes: a module-level ``router = Router()``."""
    found = set()
    for path in (ROOT / "orchestrator").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "router" for t in node.targets)
                and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "Router"
            ):
                found.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def test_the_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    assert len(verdicts) == 7
    assert set(verdicts.values()) == {"KEPT"}, verdicts


def test_every_handler_module_is_held_to_running_no_sql() -> None:
    handlers = _handler_modules()
    assert "orchestrator.training.trainings_api" in handlers  # the scan finds them
    listed = _contract_option("handlers-no-sql", "source_modules")
    assert handlers == listed, f"add to / remove from handlers-no-sql: {sorted(handlers ^ listed)}"


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(CONFIG, tree / ".importlinter")
    return tree


def _verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT or BROKEN, from lint-imports' summary (names may wrap over lines)."""
    names = [section["name"] for key, section in _config().items() if key.startswith("importlinter:contract:")]
    flat = " ".join(output.split())
    verdicts = {}
    for name in names:
        after = flat.split(f"{name} ", 1)[1]
        verdicts[name] = after.split(" ", 1)[0]
    return verdicts


def test_forbidden_imports_break_the_contracts(tmp_path: Path) -> None:
    """In a copy of the tree, one module per rule imports what the rule forbids: every contract breaks."""
    tree = _copy_tree(tmp_path)
    probes = {
        "comfy_workflows/_probe.py": "import orchestrator.settings",  # a pure library reaches into the service
        "orchestrator/jobs/_probe.py": "import orchestrator.api.bodies",  # core -> web layer (and a cycle)
        "orchestrator/events/_probe.py": "import orchestrator.generation.queries",  # core -> a feature
        "orchestrator/training/_probe.py": "from orchestrator.generation import payload",  # feature -> feature
        "orchestrator/generation/_probe.py": "from orchestrator.loras import library",  # registry internals
        "orchestrator/webhooks/_probe.py": "import aiohttp",  # a use case with an HTTP helper
    }
    for name, statement in probes.items():
        (tree / name).write_text(f'"""A forbidden import, written by a test."""\n\n{statement}\n')
    handler = tree / "orchestrator/loras/api.py"  # a handler running SQL itself
    handler.write_text(handler.read_text() + "\nfrom sqlalchemy import text as _text\n")
    result = _lint(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    assert set(verdicts.values()) == {"BROKEN"}, verdicts
