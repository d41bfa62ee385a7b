"""Issue 8, item 1: hostile input to the core endpoints is a 4xx naming the field, never a 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from yarl import URL

from tests.integration.conftest import Caller, Service

PROBLEM = "application/problem+json"


async def _problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == PROBLEM
    return dict(body)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/jobs?kind=%00", "kind"),
        ("/v1/jobs?kind=a%01b", "kind"),
        ("/v1/jobs?cursor=%1b%5b", "cursor"),
        ("/v1/jobs/a%00b", "id"),
        ("/v1/jobs/a%00b/events", "id"),
        ("/v1/events?after=%00", "after"),
    ],
)
async def test_control_characters_in_the_query_or_path_are_422_naming_the_parameter(
    service: Service, http: aiohttp.ClientSession, caller: Caller, path: str, field: str
) -> None:
    async with http.get(URL(service.url + path, encoded=True), headers=caller.headers) as response:
        problem = await _problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["errors"][0]["type"] == "control_character"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"kind": "noop", "payload": {"steps": 1}, "webhook_url": "http://a\\u0000b.example/"}', "webhook_url"),
        ('{"kind": "no\\u0000op"}', "kind"),
        ('{"kind": "noop", "payload": {"steps\\u0000": 1}}', "payload.steps\x00"),
        ('{"kind": "noop", "payload": {"steps": 1}, "x": ["ok", "\\ud800"]}', "x[1]"),
        ('{"kind": "noop", "payload": {"steps": 1e999}}', "payload.steps"),
        ('{"kind": "noop", "priority": false}', "priority"),
        ('{"kind": "noop", "priority": true}', "priority"),
        ('{"kind": "noop", "priority": "5"}', "priority"),
        ('{"kind": "noop", "priority": 5.0}', "priority"),
        ('{"kind": "noop", "payload": {"fail_at_step": 2147483648}}', "payload.fail_at_step"),
    ],
)
async def test_json_strings_numbers_and_bools_are_checked_before_anything_is_stored(
    service: Service, http: aiohttp.ClientSession, caller: Caller, body: str, field: str
) -> None:
    headers = {**caller.headers, "Content-Type": "application/json"}
    async with http.post(f"{service.url}/v1/jobs", data=body.encode(), headers=headers) as response:
        problem = await _problem(response, 422)
    assert field in [e["field"] for e in problem["errors"]]
    assert all(set(e) == {"field", "reason", "type"} for e in problem["errors"])


async def test_nan_and_infinity_are_not_json(service: Service, http: aiohttp.ClientSession, caller: Caller) -> None:
    headers = {**caller.headers, "Content-Type": "application/json"}
    for body in (b'{"kind": "noop", "payload": {"step_ms": NaN}}', b'{"kind": "noop", "priority": -Infinity}'):
        async with http.post(f"{service.url}/v1/jobs", data=body, headers=headers) as response:
            await _problem(response, 400)
