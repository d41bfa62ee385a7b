# SPDX-License-Identifier: Apache-2.0
"""Cancel, a backend dying mid-run, execution errors, delete, listing and owner isolation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text

from orchestrator.app_keys import STORAGE
from orchestrator.generation.generation_services import GENERATION
from orchestrator.generation.pending_images import PendingImages
from tests.integration.conftest import Caller, new_caller
from tests.integration.generation.conftest import (
    SDXL,
    GenerationService,
    events_of,
    get_json,
    submit,
    txt2img,
)
from tests.standin.comfyui.server import CORRUPT_LORA
from tests.support.db import wait_for_event, wait_for_terminal, wait_until


@pytest.fixture
async def held(generation_service: GenerationService) -> AsyncIterator[GenerationService]:
    """Both stand-ins hold their samplers after step 1 until released (always released afterwards)."""
    for backend in generation_service.backends:
        backend.hold(step=1)
    try:
        yield generation_service
    finally:
        for backend in generation_service.backends:
            backend.release()


async def _running_on(svc: GenerationService, job_id: str) -> str:
    """Wait until the job reported progress with its backend recorded; that backend's URL."""
    await wait_for_event(svc.database_url, uuid.UUID(job_id), "job.progress")
    await wait_until(svc.database_url, "SELECT backend IS NOT NULL FROM jobs WHERE id = $1", uuid.UUID(job_id))
    async with svc.engine.connect() as conn:
        backend = await conn.scalar(text("SELECT backend FROM jobs WHERE id = :j"), {"j": uuid.UUID(job_id)})
    return str(backend)


async def test_cancel_mid_run_interrupts_comfyui_and_ends_cancelled(
    held: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = held
    job_id = await submit(http, svc, me, txt2img(seed=21))
    backend = await _running_on(svc, job_id)
    async with http.post(f"{svc.url}/v1/generations/{job_id}/cancel", headers=me.headers) as response:
        assert response.status == 202, await response.text()
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.cancelled"
    assert "job.artifact" not in [e.event for e in events]
    entry = svc.standin(backend).executor.history[job_id]
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["status"] == "cancelled"
    assert generation["images"] == []


async def test_a_backend_dying_mid_run_retries_on_the_other(
    held: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = held
    job_id = await submit(http, svc, me, txt2img(seed=22))
    victim = svc.standin(await _running_on(svc, job_id))
    survivor = next(b for b in svc.backends if b is not victim)
    survivor.release()
    try:
        await victim.die()
        events = await events_of(http, svc, me, job_id)
    finally:
        await victim.revive()
        pool = svc.app[GENERATION].backends().pool
        assert pool is not None
        assert await pool.backend(victim.url).connection.wait_connected(15.0)
        await svc.probe()
    retrying = [e.data for e in events if e.event == "job.retrying"]
    assert [r["attempt"] for r in retrying] == [2]
    assert retrying[0]["error"]["class"] == "backend_lost"
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["result"]["backend"] == survivor.url
    assert generation["attempts"] == 2
    assert pool.backend(victim.url).ready


async def test_an_error_inside_comfyui_fails_with_its_node_and_field(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id = await submit(http, svc, me, txt2img(loras=[{"lora": CORRUPT_LORA}]))
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.failed"
    error = events[-1].data["error"]
    assert error["class"] == "execution_error"
    assert error["retryable"] is False
    assert error["node_type"] == "LoraLoader"
    assert error["field"] == "loras[0]"
    assert "SafetensorError" in error["exception_type"]
    assert "job.retrying" not in [e.event for e in events]


async def test_delete_removes_files_and_rows_but_not_while_running(
    held: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = held
    job_id = await submit(http, svc, me, txt2img(seed=23))
    await _running_on(svc, job_id)
    async with http.delete(f"{svc.url}/v1/generations/{job_id}", headers=me.headers) as response:
        assert response.status == 409
        assert (await response.json(content_type=None))["current_status"] == "running"
    for backend in svc.backends:
        backend.release()
    await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    await PendingImages(svc.engine, svc.app[STORAGE], interval_s=1).sweep()  # its file written, as 5 s later
    image = svc.app_storage_path(f"generations/{job_id}/0.png")
    assert image.is_file()
    async with http.delete(f"{svc.url}/v1/generations/{job_id}", headers=me.headers) as response:
        assert response.status == 204
    assert not image.exists()
    assert not image.parent.exists()
    for path in (f"/v1/generations/{job_id}", f"/v1/generations/{job_id}/images/0", f"/v1/jobs/{job_id}"):
        async with http.get(svc.url + path, headers=me.headers) as response:
            assert response.status == 404
    async with svc.engine.connect() as conn:
        rows = await conn.scalar(
            text("SELECT count(*) FROM generation_images WHERE job_id = :j"), {"j": uuid.UUID(job_id)}
        )
        events = await conn.scalar(text("SELECT count(*) FROM job_events WHERE job_id = :j"), {"j": uuid.UUID(job_id)})
    assert (rows, events) == (0, 0)


async def test_another_owner_sees_nothing(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id = await submit(http, svc, me, txt2img(seed=24))
    await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    intruder = await new_caller(svc.engine, f"intruder-{uuid.uuid4().hex[:6]}")
    base = f"{svc.url}/v1/generations/{job_id}"
    for method, url in [
        ("GET", base),
        ("GET", f"{base}/images/0"),
        ("GET", f"{base}/preview"),
        ("POST", f"{base}/cancel"),
        ("DELETE", base),
        ("GET", f"{svc.url}/v1/jobs/{job_id}/events"),
    ]:
        async with http.request(method, url, headers=intruder.headers) as response:
            assert response.status == 404, (method, url)
    listed = await get_json(http, svc, intruder, "/v1/generations")
    assert listed["items"] == []
    async with http.get(base, headers=me.headers) as response:
        assert response.status == 200


async def test_a_job_of_another_kind_is_not_a_generation(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    async with http.post(f"{svc.url}/v1/jobs", json={"kind": "noop"}, headers=me.headers) as response:
        noop_id = (await response.json())["id"]
    for path in (f"/v1/generations/{noop_id}", f"/v1/generations/{noop_id}/cancel"):
        method = "POST" if path.endswith("cancel") else "GET"
        async with http.request(method, svc.url + path, headers=me.headers) as response:
            assert response.status == 404


async def test_list_filters_and_pages(generation_service: GenerationService, http: aiohttp.ClientSession) -> None:
    svc = generation_service
    caller = await new_caller(svc.engine, f"lister-{uuid.uuid4().hex[:6]}")
    ids = [await submit(http, svc, caller, txt2img(seed=30 + n)) for n in range(3)]
    ids.append(await submit(http, svc, caller, txt2img(base_model=SDXL, width=64, height=64, seed=40)))
    await wait_for_terminal(svc.database_url, [uuid.UUID(i) for i in ids])

    first = await get_json(http, svc, caller, "/v1/generations?limit=3")
    assert [g["id"] for g in first["items"]] == ids[::-1][:3]
    second = await get_json(http, svc, caller, f"/v1/generations?limit=3&cursor={first['next_cursor']}")
    assert [g["id"] for g in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    sdxl = await get_json(http, svc, caller, f"/v1/generations?base_model={SDXL}")
    assert [g["id"] for g in sdxl["items"]] == [ids[3]]
    done = await get_json(http, svc, caller, "/v1/generations?status=succeeded&template=txt2img")
    assert len(done["items"]) == 4
    assert all(g["images"] and g["images"][0]["url"].endswith("/images/0") for g in done["items"])
    assert (await get_json(http, svc, caller, "/v1/generations?template=workflow"))["items"] == []


async def test_a_retry_collects_the_finished_run_instead_of_running_it_again(
    held: GenerationService, http: aiohttp.ClientSession, me: Caller, tmp_path: Path
) -> None:
    svc = held
    job_id = await submit(http, svc, me, txt2img(seed=25))
    standin = svc.standin(await _running_on(svc, job_id))
    submitted_before = standin.executor.number
    # Fetching the image fails once, retryably: its /view answers 503 (and the service does not find it in the
    # output folder it reads for the second backend, which the stand-in now writes elsewhere).
    standin.unavailable_views = 1
    shared_output = standin.files.dirs["output"]
    standin.files.dirs["output"] = tmp_path
    try:
        for backend in svc.backends:
            backend.release()
        await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    finally:
        standin.files.dirs["output"] = shared_output

    events = await events_of(http, svc, me, job_id)
    retrying = [e.data for e in events if e.event == "job.retrying"]
    assert [r["error"]["class"] for r in retrying] == ["backend_unavailable"]
    assert events[-1].event == "job.succeeded", events[-1]
    assert standin.executor.number == submitted_before  # ComfyUI was not asked to run it again
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["attempts"] == 2
    assert generation["result"]["backend"] == standin.url
    async with http.get(f"{svc.url}/v1/generations/{job_id}/images/0", headers=me.headers) as response:
        assert response.status == 200
        assert (await response.read()).startswith(b"\x89PNG")


async def test_with_every_backend_down_a_retry_waits_queued_for_one_to_come_back(
    held: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = held
    job_id = await submit(http, svc, me, txt2img(seed=26))
    first = svc.standin(await _running_on(svc, job_id))
    second = next(b for b in svc.backends if b is not first)
    pool = svc.app[GENERATION].backends().pool
    assert pool is not None
    down = [second, first]
    try:
        for backend in down:
            await backend.die()
        await wait_until(
            svc.database_url,
            "SELECT count(*) = 1 FROM job_events WHERE job_id = $1 AND type = 'job.retrying'",
            uuid.UUID(job_id),
        )
        assert not pool.ready  # no backend can take it: attempt 2 waits in the queue (no lane to dispatch to)
        await second.revive()
        down.remove(second)
        assert await pool.backend(second.url).connection.wait_connected(15.0)
        await svc.probe()
        await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    finally:
        for backend in down:
            await backend.revive()
        for backend in svc.backends:
            assert await pool.backend(backend.url).connection.wait_connected(15.0)
        await svc.probe()
    events = await events_of(http, svc, me, job_id)
    assert [e.event for e in events if e.event in ("job.retrying", "job.succeeded")] == [
        "job.retrying",
        "job.succeeded",
    ]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["result"]["backend"] == second.url
