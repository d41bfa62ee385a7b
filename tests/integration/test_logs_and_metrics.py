"""What operators see: JSON log lines carrying the job's and the request's context, an access log with
request ids (X-Request-ID in and out), and the job, queue and webhook metrics."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import uuid
from pathlib import Path

import aiohttp

from tests.integration.conftest import Caller, Service
from tests.support.db import wait_for_terminal
from tests.support.service import free_port, running_app, spawn_atelier, wait_until_healthy


async def test_json_logs_carry_job_and_request_context(fresh_database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        "ATELIER_DATABASE_URL": fresh_database_url,
        "ATELIER_PORT": str(port),
        "ATELIER_AUTH": "disabled",
        "ATELIER_LOG_FORMAT": "json",
        "ATELIER_VAR_DIR": str(tmp_path / "var"),
        "ATELIER_STORAGE_URL": f"file://{tmp_path / 'storage'}",
        "ATELIER_MODELS_DIR": str(tmp_path / "models"),
        "ATELIER_WORKER_KINDS": "noop",
    }
    log_path = tmp_path / "service.log"
    process = spawn_atelier(["serve"], env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(url, process)
        async with aiohttp.ClientSession() as http:
            body = {"kind": "noop", "payload": {"steps": 2}}
            async with http.post(f"{url}/v1/jobs", json=body, headers={"X-Request-ID": "req-42"}) as response:
                assert response.status == 202
                assert response.headers["X-Request-ID"] == "req-42"
                job_id = (await response.json())["id"]
            await wait_for_terminal(fresh_database_url, [uuid.UUID(job_id)])
            async with http.get(f"{url}/metrics") as response:
                metrics = await response.text()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    finished = [r for r in records if r.get("job_id") == job_id and r.get("outcome") == "succeeded"]
    assert len(finished) == 1
    assert finished[0]["kind"] == "noop"
    assert finished[0]["attempt"] == "1"
    assert finished[0]["owner"]
    [access] = [r for r in records if r["logger"] == "atelier.access" and r.get("request_id") == "req-42"]
    assert (access["method"], access["path"], access["status"]) == ("POST", "/v1/jobs", 202)
    assert access["duration_ms"] >= 0
    assert re.search(r'atelier_jobs\{kind="noop",status="succeeded"\} 1\.0', metrics)
    assert re.search(r'atelier_job_duration_seconds_count\{kind="noop",outcome="succeeded"\} 1\.0', metrics)


async def test_request_ids_are_made_when_missing_or_insane(service: Service, caller: Caller) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{service.url}/v1/jobs", headers=caller.headers) as response:
            made = response.headers["X-Request-ID"]
            assert re.fullmatch(r"[0-9a-f]{32}", made)
        insane = {**caller.headers, "X-Request-ID": "bad id\twith spaces"}
        async with http.get(f"{service.url}/v1/jobs/{uuid.uuid4()}", headers=insane) as response:
            assert response.status == 404  # problem answers say it too
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
        async with http.get(f"{service.url}/v1/events", headers={**caller.headers, "X-Request-ID": "sse-1"}) as r:
            assert r.headers["X-Request-ID"] == "sse-1"  # streams too


async def test_queue_depth_counts_queued_jobs_by_kind(service: Service, fresh_database_url: str) -> None:
    # a database of its own and no worker: the jobs stay queued
    update = {"worker_enabled": False, "database_url": fresh_database_url, "auth": "disabled"}
    async with running_app(service.settings.model_copy(update=update)) as (_app, url), aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(f"{url}/v1/jobs", json={"kind": "noop"}) as response:
                assert response.status == 202
        async with http.get(f"{url}/metrics") as response:
            text = await response.text()
    assert 'atelier_queue_depth{kind="noop"} 3.0' in text
    assert 'atelier_jobs{kind="noop",status="queued"} 3.0' in text
