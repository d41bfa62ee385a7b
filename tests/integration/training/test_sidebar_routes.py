"""The Atelier sidebar's routes (the node pack's, on ComfyUI's server) in front of a real LoRA Atelier service.

The pack's handlers are mounted on a plain aiohttp app here, with a stand-in for ComfyUI's ``folder_paths``
(its user directory and ``loras`` folder), so this runs without ComfyUI; tests/engines/test_editor_round_trip.py
drives the same routes inside a real ComfyUI from the sidebar itself.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from custom_nodes.atelier_nodes import server_routes
from tests.integration.conftest import Caller, new_caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, submit, upload
from tests.support.service import free_port
from tests.support.sse import collect, iter_sse
from tests.unit.custom_nodes.fake_comfy import FolderPaths


@pytest.fixture(scope="module")
async def owner(training_service: TrainingService) -> Caller:
    return await new_caller(training_service.engine, f"sidebar-{uuid.uuid4().hex[:6]}")


@pytest.fixture
async def comfy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, training_service: TrainingService
) -> AsyncIterator[str]:
    """The pack's routes on a server of their own, ``ATELIER_URL`` pointing at the service, no key stored."""
    monkeypatch.setitem(sys.modules, "folder_paths", FolderPaths(tmp_path).module())
    monkeypatch.setenv("ATELIER_URL", training_service.url)
    monkeypatch.delenv("ATELIER_API_KEY", raising=False)
    table = web.RouteTableDef()
    server_routes.add_routes(table)
    app = web.Application()
    app.add_routes(table)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _save_key(http: aiohttp.ClientSession, comfy: str, url: str, key: str) -> dict[str, Any]:
    async with http.post(f"{comfy}/atelier/connection", json={"server_url": url, "api_key": key}) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def test_the_key_is_stored_server_side_and_never_answered(
    comfy: str, training_service: TrainingService, owner: Caller, http: aiohttp.ClientSession
) -> None:
    key = owner.headers["Authorization"].removeprefix("Bearer ")
    async with http.get(f"{comfy}/atelier/connection") as response:
        status = await response.json()
    assert (status["server_url"], status["key_set"], status["reachable"]) == (training_service.url, False, False)
    assert "refused the API key (HTTP 401" in status["error"]
    saved = await _save_key(http, comfy, training_service.url, key)
    assert (saved["key_set"], saved["reachable"], saved["key_hint"]) == (True, True, f"…{key[-4:]}")
    assert saved["url_source"] == "environment"
    assert key not in str(saved)
    async with http.post(f"{comfy}/atelier/connection", json={"server_url": "ftp://nope"}) as response:
        assert response.status == 422
        assert "http://host:port" in (await response.json())["detail"]


async def test_forwarded_calls_carry_the_key_and_only_the_sidebars_paths_pass(
    comfy: str, training_service: TrainingService, owner: Caller, http: aiohttp.ClientSession
) -> None:
    await _save_key(http, comfy, training_service.url, owner.headers["Authorization"].removeprefix("Bearer "))
    subject = {"name": f"Proxy {uuid.uuid4().hex[:6]}", "kind": "style", "trigger_word": "prxy"}
    async with http.post(f"{comfy}/atelier/api/v1/subjects", json=subject) as response:
        assert response.status == 201, await response.text()
        created = await response.json()
    form = aiohttp.FormData()
    for index, data in enumerate(face_photos()[:2]):
        form.add_field("file", data, filename=f"p{index}.jpg", content_type="image/jpeg")
    async with http.post(f"{comfy}/atelier/api/v1/subjects/{created['id']}/photos", data=form) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["accepted"] == 2
    async with http.get(f"{comfy}/atelier/api/v1/subjects/{created['id']}") as response:
        assert (await response.json())["photo_count"] == 2
    for path in ("/atelier/api/v1/keys", "/atelier/api/healthz", "/atelier/api/v1/../metrics"):
        async with http.get(comfy + path) as response:
            assert response.status == 404, path
    async with http.get(f"{comfy}/atelier/api/v1/loras?limit=abc") as response:
        assert response.status == 422  # the service's own problem comes back as it is
        assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_a_training_streams_through_and_resumes_after_a_reconnect(
    comfy: str, training_service: TrainingService, owner: Caller, http: aiohttp.ClientSession
) -> None:
    await _save_key(http, comfy, training_service.url, owner.headers["Authorization"].removeprefix("Bearer "))
    svc = training_service
    subject = await create_subject(http, svc, owner, name=f"Stream {uuid.uuid4().hex[:6]}", trigger_word="strm")
    await upload(http, svc, owner, subject["id"], [(f"p{i}.jpg", d) for i, d in enumerate(face_photos()[:2])])
    status, accepted = await submit(http, svc, owner, subject["id"])
    assert status == 202, accepted
    events_url = f"{comfy}/atelier/api/v1/jobs/{accepted['id']}/events"
    direct = await collect(http, svc.url + accepted["events_url"], headers=owner.headers)
    first = await collect(http, events_url, limit=3)  # a browser that lost its connection after three events
    assert [e.id for e in first] == [e.id for e in direct[:3]]
    async with http.get(events_url, headers={"Last-Event-ID": str(first[-1].id)}) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        rest = [event async for event in iter_sse(response)]
    assert [e.id for e in first + rest] == [e.id for e in direct]
    assert rest[-1].event == "job.succeeded"

    async with http.get(f"{comfy}/atelier/remote-loras?refresh=1") as response:  # what the sidebar lists
        listed = await response.json()
    name = subject["name"]
    [item] = [item for item in listed["items"] if item["subject"] == name]
    assert item["entry"] == f"{name}/{name.replace(' ', '-')}/v1 (trigger: strm)"
    assert (item["trigger_word"], item["cached"], listed["error"]) == ("strm", False, None)


async def test_without_a_server_the_routes_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession
) -> None:
    monkeypatch.setitem(sys.modules, "folder_paths", FolderPaths(tmp_path).module())
    monkeypatch.delenv("ATELIER_URL", raising=False)
    table = web.RouteTableDef()
    server_routes.add_routes(table)
    app = web.Application()
    app.add_routes(table)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with http.get(f"http://127.0.0.1:{port}/atelier/api/v1/loras") as response:
            assert response.status == 503
            assert "enter its address and an API key in the Atelier sidebar" in (await response.json())["detail"]
        async with http.get(f"http://127.0.0.1:{port}/atelier/connection") as response:
            assert (await response.json())["server_url"] is None
    finally:
        await runner.cleanup()
