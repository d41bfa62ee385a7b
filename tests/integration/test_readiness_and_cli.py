"""/readyz tells the truth when the database goes away; the CLI's admin commands work."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.db.engine import asyncpg_dsn
from orchestrator.settings import Settings
from tests.support.service import running_app


async def test_readyz_is_503_naming_the_database_when_it_is_gone(fresh_database_url: str, tmp_path: object) -> None:
    settings = Settings(database_url=fresh_database_url, worker_enabled=False, storage_url=f"file://{tmp_path}")
    name = make_url(fresh_database_url).database
    async with running_app(settings) as (_app, url), aiohttp.ClientSession() as http:
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 200
        admin = await asyncpg.connect(
            asyncpg_dsn(make_url(fresh_database_url).set(database="postgres").render_as_string())
        )
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 503
            body = await response.json()
        assert body["status"] == "not ready"
        assert "unreachable" in str(body["checks"]["database"])
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200, "alive even when not ready"


def _atelier(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_migrate_and_keys_create(fresh_database_url: str) -> None:
    env = {**os.environ, "ATELIER_DATABASE_URL": fresh_database_url}
    assert _atelier("migrate", env=env).returncode == 0
    assert _atelier("migrate", env=env).returncode == 0, "idempotent"
    created = _atelier("keys", "create", "--owner", "alice", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("atl_")
    again = _atelier("keys", "create", "--owner", "alice", env=env).stdout.strip()
    assert again != key, "a second key for the same owner"


def test_bad_configuration_is_a_clear_error() -> None:
    env = {**os.environ, "ATELIER_AUTH": "disabled", "ATELIER_HOST": "0.0.0.0"}
    result = _atelier("migrate", env=env)
    assert result.returncode == 2
    assert "refused on a non-loopback bind" in result.stderr
