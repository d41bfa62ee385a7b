"""/readyz tells the truth when the database goes away; the CLI's admin commands work."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.api.auth import KeyResolver
from orchestrator.db.engine import asyncpg_dsn, create_engine
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
    weighted = _atelier("owners", "weight", "--owner", "alice", "--weight", "2.5", env=env)
    assert weighted.returncode == 0, weighted.stderr
    assert _atelier("owners", "weight", "--owner", "nobody", "--weight", "2", env=env).returncode == 1
    assert _atelier("owners", "weight", "--owner", "alice", "--weight", "0", env=env).returncode == 2
    flagged = _atelier("keys", "create", "--owner", "ops", "--admin", "--adult", env=env)
    assert flagged.returncode == 0, flagged.stderr
    asyncio.run(_assert_flags(fresh_database_url, {key: (False, False), flagged.stdout.strip(): (True, True)}))


async def _assert_flags(database_url: str, expected: dict[str, tuple[bool, bool]]) -> None:
    """Each key's (admin, adult_content) as the service resolves it."""
    engine = create_engine(database_url, pool_size=1)
    try:
        resolver = KeyResolver(engine)
        for secret, flags in expected.items():
            identity = await resolver.resolve(secret)
            assert identity is not None
            assert (identity.admin, identity.adult_content) == flags
    finally:
        await engine.dispose()


def test_bad_configuration_is_a_clear_error() -> None:
    env = {**os.environ, "ATELIER_AUTH": "disabled", "ATELIER_HOST": "0.0.0.0"}
    result = _atelier("migrate", env=env)
    assert result.returncode == 2
    assert "refused on a non-loopback bind" in result.stderr


async def test_keys_list_and_revoke(fresh_database_url: str) -> None:
    env = {**os.environ, "ATELIER_DATABASE_URL": fresh_database_url}
    run = functools.partial(asyncio.to_thread, _atelier, env=env)
    first = (await run("keys", "create", "--owner", "carol")).stdout.strip()
    second = (await run("keys", "create", "--owner", "dave")).stdout.strip()
    listed = await run("keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    keys = json.loads(listed.stdout)
    assert [(k["owner"], first.startswith(k["prefix"] + "_")) for k in keys] == [("carol", True), ("dave", False)]
    assert all(k["revoked_at"] is None for k in keys)
    assert "secret" not in listed.stdout
    assert first not in listed.stdout
    revoked = await run("keys", "revoke", first)  # the whole key, its prefix or its id all name it
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads((await run("keys", "list", "--json")).stdout)[0]["owner"] == "dave"
    everything = json.loads((await run("keys", "list", "--all", "--owner", "carol", "--json")).stdout)
    assert everything[0]["revoked_at"] is not None
    assert (await run("keys", "revoke", "atl_nosuchkey000")).returncode == 1
    # a revoked key no longer opens the API
    settings = Settings(database_url=fresh_database_url, auth="apikey", worker_enabled=False)
    async with running_app(settings) as (_app, url), aiohttp.ClientSession() as http:
        for key, status in ((first, 401), (second, 200)):
            async with http.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {key}"}) as response:
                assert response.status == status
