"""Issue 8, item 6: Idempotency-Key on job-creating requests (here POST /v1/jobs; the other endpoints in
their features' tests): the first answer again, nothing created twice, a reused key with another body 422."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.jobs.idempotency import IdempotencyClaim
from orchestrator.jobs.records import NewJob
from orchestrator.jobs.store import JobStore
from tests.integration.conftest import Caller, Service, new_caller

NOOP = {"kind": "noop", "payload": {"steps": 1}}


async def _post(
    http: aiohttp.ClientSession, service: Service, caller: Caller, key: str | None, body: Any = NOOP
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {**caller.headers, **({"Idempotency-Key": key} if key is not None else {})}
    async with http.post(f"{service.url}/v1/jobs", json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


async def _jobs(engine: AsyncEngine, caller: Caller) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM jobs WHERE owner_id = :o"), {"o": caller.owner_id}))


async def test_the_same_key_gets_the_first_answer_and_creates_nothing(
    service: Service, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    first = await _post(http, service, caller, "order-42")
    again = await _post(http, service, caller, "order-42")
    assert first[0] == again[0] == 202
    assert first[1] == again[1]
    assert first[2]["Location"] == again[2]["Location"] == f"/v1/jobs/{first[1]['id']}"
    assert "Idempotent-Replayed" not in first[2]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert await _jobs(engine, caller) == 1
    other = await _post(http, service, caller, "order-43")
    assert other[1]["id"] != first[1]["id"]
    assert await _jobs(engine, caller) == 2


async def test_a_key_reused_for_another_request_is_422_and_creates_nothing(
    service: Service, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    assert (await _post(http, service, caller, "k1"))[0] == 202
    status, problem, _ = await _post(http, service, caller, "k1", {"kind": "noop", "payload": {"steps": 2}})
    assert status == 422
    assert problem["errors"] == [
        {"field": "Idempotency-Key", "reason": problem["errors"][0]["reason"], "type": "idempotency_key_reused"}
    ]
    assert await _jobs(engine, caller) == 1


async def test_concurrent_requests_with_one_key_create_one_job(
    service: Service, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    answers = await asyncio.gather(*(_post(http, service, caller, "burst") for _ in range(20)))
    assert {status for status, _, _ in answers} == {202}
    assert len({body["id"] for _, body, _ in answers}) == 1
    assert await _jobs(engine, caller) == 1


async def test_keys_are_per_owner_and_expire_after_24_hours(
    service: Service, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    other = await new_caller(engine, f"other-{uuid.uuid4().hex[:6]}")
    mine, theirs = await _post(http, service, caller, "shared"), await _post(http, service, other, "shared")
    assert mine[1]["id"] != theirs[1]["id"]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE owner_id = :o"),
            {"o": caller.owner_id},
        )
    later = await _post(http, service, caller, "shared", {"kind": "noop", "payload": {"steps": 3}})
    assert later[0] == 202
    assert later[1]["id"] != mine[1]["id"]
    assert "Idempotent-Replayed" not in later[2]
    assert await _jobs(engine, caller) == 2


async def test_a_refused_request_is_not_remembered(
    service: Service, http: aiohttp.ClientSession, caller: Caller, engine: AsyncEngine
) -> None:
    assert (await _post(http, service, caller, "fix-me", {"kind": "noop", "payload": {"steps": -1}}))[0] == 422
    assert (await _post(http, service, caller, "fix-me"))[0] == 202
    assert await _jobs(engine, caller) == 1


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "caf\u00e9"])
async def test_malformed_keys_are_422(service: Service, http: aiohttp.ClientSession, caller: Caller, key: str) -> None:
    headers = {**caller.headers, "Idempotency-Key": key}
    async with http.post(f"{service.url}/v1/jobs", json=NOOP, headers=headers) as response:
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "Idempotency-Key"


async def test_the_key_is_written_by_the_statement_that_writes_the_job(
    engine: AsyncEngine, owner_id: uuid.UUID
) -> None:
    """A job that cannot be written (priority beyond its column) leaves no key behind: one statement."""
    claim = IdempotencyClaim("atomic", "0" * 64, 202, {"id": "x"}, None)
    async with JobStore(engine) as store:
        with pytest.raises(asyncpg.DataError):
            await store.create(NewJob(owner_id=owner_id, kind="noop", payload={}, priority=40_000, idempotency=claim))
    async with engine.connect() as conn:
        keys = await conn.scalar(text("SELECT count(*) FROM idempotency_keys WHERE owner_id = :o"), {"o": owner_id})
    assert keys == 0
