"""HTTP basics: auth, owner isolation, problem+json for bad input, health, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.conftest import Caller, Service, new_caller
from tests.support.db import wait_for_terminal
from tests.support.sse import collect

PROBLEM = "application/problem+json"


async def _create(http: aiohttp.ClientSession, service: Service, caller: Caller, **payload: object) -> str:
    body = {"kind": "noop", "payload": payload or {"steps": 2}}
    async with http.post(f"{service.url}/v1/jobs", json=body, headers=caller.headers) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])


async def test_requests_without_a_valid_key_are_401_problems(service: Service, http: aiohttp.ClientSession) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        async with http.get(f"{service.url}/v1/jobs", headers=headers) as response:
            assert response.status == 401
            assert response.content_type == PROBLEM
            assert "WWW-Authenticate" in response.headers


async def test_another_owners_job_is_404_and_its_events_never_reach_me(
    service: Service, http: aiohttp.ClientSession, engine: AsyncEngine, caller: Caller
) -> None:
    intruder = await new_caller(engine, f"intruder-{uuid.uuid4().hex[:6]}")
    # The intruder watches all of its own events while the owner's job runs to completion.
    async with http.get(f"{service.url}/v1/events", headers=intruder.headers) as intruder_stream:
        assert intruder_stream.status == 200
        job_id = await _create(http, service, caller, steps=3)
        mine = await _create(http, service, intruder, steps=1)
        for path in (f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/events"):
            async with http.get(service.url + path, headers=intruder.headers) as response:
                assert response.status == 404
                assert response.content_type == PROBLEM
        async with http.post(f"{service.url}/v1/jobs/{job_id}/cancel", headers=intruder.headers) as response:
            assert response.status == 404
        await wait_for_terminal(service.settings.database_url, [uuid.UUID(job_id), uuid.UUID(mine)])
        seen: list[str] = []
        async with asyncio.timeout(10):
            async for raw in intruder_stream.content:
                line = raw.decode()
                if line.startswith("data:"):
                    seen.append(json.loads(line[5:])["job_id"])
                    if json.loads(line[5:]).get("result") is not None:
                        break
    assert seen
    assert set(seen) == {mine}
    owner_view = await collect(http, f"{service.url}/v1/jobs/{job_id}/events", headers=caller.headers)
    assert owner_view[-1].event == "job.succeeded"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b'{"kind": "noop",', "application/json", 400, None),
        (b"", "application/json", 400, None),
        (b"[1, 2]", "application/json", 422, None),
        (b'{"kind": "noop", "payload": {"steps": "many"}}', "application/json", 422, "payload.steps"),
        (b'{"kind": "noop", "payload": {"steps": -1}}', "application/json", 422, "payload.steps"),
        (b'{"kind": "noop", "extra": true}', "application/json", 422, "extra"),
        (b'{"kind": "training"}', "application/json", 422, "kind"),
        (b'{"kind": "noop", "priority": 1e9}', "application/json", 422, "priority"),
        (b'{"kind": "noop"}', "text/plain", 415, None),
        (b'{"kind": "noop", "pad": "' + b"x" * 200_000 + b'"}', "application/json", 413, None),
        (b"\xff\xfe\x00garbage", "application/json", 400, None),
    ],
)
async def test_bad_bodies_are_4xx_problems_naming_the_field(
    service: Service,
    http: aiohttp.ClientSession,
    caller: Caller,
    body: bytes,
    content_type: str,
    status: int,
    field: str | None,
) -> None:
    headers = {**caller.headers, "Content-Type": content_type}
    async with http.post(f"{service.url}/v1/jobs", data=body, headers=headers) as response:
        assert response.status == status, await response.text()
        assert response.content_type == PROBLEM
        problem = await response.json()
        assert problem["status"] == status
        assert problem["detail"]
        if field is not None:
            assert field in [e["field"] for e in problem["errors"]]
            assert field in problem["detail"]


async def test_unknown_routes_and_methods_are_problems(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{service.url}/v1/nothing-here") as response:
        assert (response.status, response.content_type) == (404, PROBLEM)
    async with http.delete(f"{service.url}/healthz") as response:
        assert (response.status, response.content_type) == (405, PROBLEM)


async def test_bad_query_and_resume_values_name_the_parameter(
    service: Service, http: aiohttp.ClientSession, caller: Caller
) -> None:
    async with http.get(f"{service.url}/v1/jobs?limit=0", headers=caller.headers) as response:
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "limit"
    async with http.get(f"{service.url}/v1/events", headers={**caller.headers, "Last-Event-ID": "x"}) as response:
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "Last-Event-ID"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["noop", "x"]), "payload": JSON_VALUES, "priority": JSON_VALUES}
    ).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
async def test_no_body_makes_the_service_fail(service: Service, caller: Caller, body: bytes) -> None:
    headers = {**caller.headers, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(f"{service.url}/v1/jobs", data=body, headers=headers) as r:
        assert r.status == 202 or (400 <= r.status < 500 and r.content_type == PROBLEM), await r.text()


async def test_health_readiness_metrics_and_openapi(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{service.url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{service.url}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"]["database"]["queued"] >= 0
    async with http.get(f"{service.url}/metrics") as response:
        assert "atelier_http_requests_total" in await response.text()
    async with http.get(f"{service.url}/openapi.json") as response:
        doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    assert "post" in doc["paths"]["/v1/jobs"]
    assert doc["paths"]["/v1/jobs"]["post"]["requestBody"]
    assert "CreateJob" in doc["components"]["schemas"]
    async with http.get(f"{service.url}/docs") as response:
        assert "SwaggerUIBundle" in await response.text()  # what it renders: tests/integration/docs
