"""The embedded Postgres: `atelier serve` runs on it with nothing configured, shares it, and stops it on exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psutil
import pytest

from orchestrator.db.embedded import AUTO, EMBEDDED, EmbeddedCluster, choose_database
from tests.support.service import free_port, spawn_atelier, wait_until_healthy
from tests.support.sse import collect

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def var() -> Iterator[Path]:
    """A var dir outside pytest's temporary root: run as root, the wheel runs Postgres as a user of its own,
    which must be able to reach the data dir, and every pytest session on the machine resets that root to 0700."""
    base = Path(tempfile.mkdtemp(prefix="atelier-embedded-"))
    yield base / "var"
    shutil.rmtree(base, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


def _gone(pid: int) -> bool:
    """Whether the process ends (pg_ctl returns once the pid file is gone, a moment before the exit)."""
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    _gone_list, alive = psutil.wait_procs([process], timeout=30)
    return not alive


def _migrate(var: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATELIER_DATABASE_URL": EMBEDDED, "ATELIER_VAR_DIR": str(var)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )


async def test_serve_on_the_embedded_database_runs_a_job_and_stops_the_cluster(var: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {"ATELIER_DATABASE_URL": EMBEDDED, "ATELIER_VAR_DIR": str(var), "ATELIER_AUTH": "disabled"}
    log = tmp_path / "serve.log"
    server = spawn_atelier(["serve", "--port", str(port), "--storage-url", f"file://{tmp_path}/storage"], env, log)
    cluster = EmbeddedCluster(var)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(base, server, timeout_s=120)
        postmaster = cluster.running_pid()
        assert postmaster is not None, "the cluster runs while the service does"
        assert cluster.users() == [server.pid]
        # a second process on the same var dir shares the cluster and leaves it running when it is done
        migrated = _migrate(var)
        assert migrated.returncode == 0, migrated.stderr
        assert "embedded Postgres" in migrated.stdout
        assert cluster.running_pid() == postmaster, "the other process neither restarted nor stopped it"
        async with aiohttp.ClientSession() as http:
            job = {"kind": "noop", "payload": {"steps": 3, "step_ms": 10}}
            async with http.post(f"{base}/v1/jobs", json=job) as response:
                assert response.status == 202, await response.text()
                job_id = (await response.json())["id"]
            events = await collect(http, f"{base}/v1/jobs/{job_id}/events")
    finally:
        code = _stop(server) if server.poll() is None else server.returncode
    assert code == 0, log.read_text()[-3000:]
    types = [event.event for event in events]
    assert types[0] == "job.queued", types
    assert types[-1] == "job.succeeded", types
    assert types.count("job.progress") == 3
    assert "database: embedded Postgres in" in log.read_text()
    assert cluster.running_pid() is None
    assert _gone(postmaster), "the postmaster is gone after shutdown"
    assert not (var / "postgres" / "postmaster.pid").exists()


def test_a_killed_user_does_not_keep_the_cluster_up(var: Path) -> None:
    cluster = EmbeddedCluster(var)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    url = cluster.acquire()
    try:
        assert "host=" in url
        (var / "postgres.users").write_text(json.dumps([dead.pid, os.getpid()]))
        assert cluster.users() == [os.getpid()], "a pid that no longer runs is no user"
    finally:
        assert cluster.release(), "the last live user stops the cluster"
    assert cluster.running_pid() is None


def test_the_database_choice(tmp_path: Path) -> None:
    given = choose_database("postgresql+asyncpg://u@db.example:5432/x", tmp_path)
    assert given is not None
    assert given.url.endswith("/x")
    assert not given.embedded
    assert choose_database(EMBEDDED, tmp_path) is None
    auto = choose_database(AUTO, tmp_path)  # the test machine has a Postgres on 127.0.0.1:5432
    assert auto is not None
    assert "127.0.0.1:5432" in auto.url
