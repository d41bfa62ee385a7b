"""The README, compose.yaml and the Makefile say only what the code does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.api.openapi import OPENAPI_DOC
from orchestrator.app import create_app
from orchestrator.settings import Settings, settings_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
# Variables the tests and the compose file read that are not service settings.
NOT_SETTINGS = {"ATELIER_COMFYUI_IMAGE", "ATELIER_SD_SCRIPTS_HOST_DIR", "ATELIER_CLIP_BPE"}
# The client's own variables (client/atelier_client/config.py); the node pack reads ATELIER_URL / ATELIER_API_KEY too.
CLIENT_VARIABLES = {"ATELIER_URL", "ATELIER_API_KEY", "ATELIER_CONFIG"}


def test_the_configuration_table_is_generated_from_settings() -> None:
    table = README.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == settings_table(), (
        "run: python -c 'from orchestrator.settings import settings_table as t; print(t())'"
    )


@pytest.mark.parametrize("name", ["README.md", "compose.yaml", "Makefile", "Dockerfile"])
def test_every_atelier_variable_named_is_a_setting(name: str) -> None:
    fields = {f"ATELIER_{field.upper()}" for field in Settings.model_fields}
    named = set(re.findall(r"ATELIER_[A-Z0-9_]+", (ROOT / name).read_text()))
    unknown = {v for v in named - fields - NOT_SETTINGS - CLIENT_VARIABLES if not v.startswith("ATELIER_TEST_")}
    assert not unknown, f"{name} names settings that do not exist: {sorted(unknown)}"


def test_compose_parses_and_its_services_use_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert {"postgres", "minio", "api"} <= set(compose["services"])


def _matches(path: str, template: str) -> bool:
    """A concrete path (``/v1/templates/txt2img``, ``/v1/jobs/<job>``) fits a template (``/v1/templates/{name}``)."""
    shown, wanted = path.split("/"), template.split("/")
    return len(shown) == len(wanted) and all(w.startswith("{") or s == w for s, w in zip(shown, wanted, strict=True))


def test_every_api_path_in_the_readme_exists() -> None:
    templates = list(create_app(Settings())[OPENAPI_DOC]["paths"])
    mentioned = set(re.findall(r"`(?:GET|POST|DELETE) (/[^` \[]*)", README))
    mentioned |= set(re.findall(r"localhost:8000(/[^\s'\"?)]*)", README))
    assert len(mentioned) > 10
    for path in mentioned:
        assert any(_matches(path, t) for t in templates), f"the README shows {path}, which the API does not have"


def _named_modules(text: str) -> set[str]:
    """Backticked module paths such as `jobs/store.py`, `comfy/run.py` or `generation/kind.GenerationKind`."""
    found = set()
    for token in re.findall(r"`([a-z_]+(?:/[a-z_]+)+(?:\.[A-Za-z_]+)*)`", text):
        path, _, _attribute = token.partition(".")
        found.add(path)
    return found


def test_every_module_architecture_md_names_exists() -> None:
    named = _named_modules((ROOT / "ARCHITECTURE.md").read_text())
    assert "jobs/group_commit" in named
    missing = sorted(
        p
        for p in named
        if not any((base / f"{p}.py").is_file() or (base / p).is_dir() for base in (ROOT, ROOT / "orchestrator"))
    )
    assert not missing, f"ARCHITECTURE.md names modules that do not exist: {missing}"


def _benchmark_flags() -> dict[str, set[str]]:
    """Per benchmark the README's Benchmarks section describes (the first `bench_*` a paragraph names), the
    ``--flags`` that paragraph gives it."""
    section = README.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    flags: dict[str, set[str]] = {}
    for paragraph in section.split("\n\n"):
        named = re.search(r"`(bench_[a-z_]+)`", paragraph)
        found = set(re.findall(r"`[^`]*?(--[a-z][a-z-]*)", paragraph))
        if named and found:
            flags.setdefault(named.group(1), set()).update(found)
    return flags


def test_every_benchmark_flag_in_the_readme_exists() -> None:
    flags = _benchmark_flags()
    assert {"bench_generation_overhead", "bench_scheduling"} <= flags.keys()
    for module, named in flags.items():
        usage = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", "--help"], cwd=ROOT, capture_output=True, text=True
        )
        assert usage.returncode == 0, usage.stderr
        offered = set(re.findall(r"--[a-z][a-z-]*", usage.stdout))
        assert named <= offered, f"the README gives {module} flags it does not have: {sorted(named - offered)}"
