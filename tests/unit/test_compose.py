"""compose.yaml is a valid Compose file that comes up ready (no Docker daemon in CI: checked by reading it).

The Compose specification's JSON schema comes from the check-jsonschema package, which vendors it
(``check_jsonschema/builtin_schemas/vendor/compose-spec.json``, with its licence); the rest are the
promises the README makes about the file.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from orchestrator.engines.specs import ENGINES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def compose_schema() -> dict[str, Any]:
    """The Compose specification's schema as check-jsonschema ships it."""
    vendored = resources.files("check_jsonschema.builtin_schemas") / "vendor" / "compose-spec.json"
    return json.loads(vendored.read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    schema = compose_schema()
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_the_schema_catches_a_broken_file() -> None:
    broken = {"services": {"api": {"image": "x", "ports": "8000:8000", "healthcheck": {"retries": "many"}}}}
    assert list(jsonschema.Draft7Validator(compose_schema()).iter_errors(broken))


def test_the_api_is_healthy_only_when_ready_and_keeps_its_state_on_a_volume() -> None:
    api = SERVICES["api"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    named = set(COMPOSE["volumes"])
    for service in ("api", "comfyui", "trainer"):
        mounts = {m.split(":")[0]: m.split(":")[1] for m in SERVICES[service]["volumes"]}
        assert "/data/var" in mounts.values(), f"{service}: runtime state on a volume"
        assert all(source in named for source in mounts), f"{service}: named volumes only"


def test_presigned_links_point_where_clients_reach_minio() -> None:
    env = COMPOSE["x-atelier-env"]
    public = env["ATELIER_S3_PUBLIC_ENDPOINT_URL"]
    port = re.search(r":(\d+)$", public)
    assert port is not None
    assert f"{port.group(1)}:9000" in SERVICES["minio"]["ports"], "the public endpoint is MinIO's published port"
    assert env["ATELIER_S3_ENDPOINT_URL"] == "http://minio:9000"


@pytest.mark.parametrize(("service", "engine"), [("comfyui", "comfyui"), ("trainer", "sd-scripts")])
def test_engine_images_install_the_engines_as_the_installer_does(service: str, engine: str) -> None:
    build = SERVICES[service]["build"]
    dockerfile = ROOT / build["dockerfile"]
    assert dockerfile.is_file()
    assert build["args"]["ENGINE"] == engine
    assert engine in ENGINES
    text = dockerfile.read_text()
    assert 'atelier engines install "${ENGINE}"' in text
    assert "--ref" not in text, "the image takes the pinned commits of the code"
    assert "--source" not in text
    entrypoint = ROOT / "docker" / "engine-entrypoint.sh"
    assert entrypoint.stat().st_mode & 0o111
    devices = SERVICES[service]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]


def test_the_first_api_key_command_is_documented() -> None:
    assert "docker compose exec api atelier keys create --owner" in (ROOT / "compose.yaml").read_text()
