# SPDX-License-Identifier: Apache-2.0
"""Issue 8, items 1 and 2 on the generation endpoints: control characters, integer overflow and bodies
that arrive in pieces are 4xx answers naming the field, never a 500, and nothing is queued."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from yarl import URL

from tests.integration.conftest import Caller
from tests.integration.generation.conftest import LORA_A, GenerationService, txt2img

PROBLEM = "application/problem+json"


async def _problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == PROBLEM
    return dict(body)


async def _job_count(svc: GenerationService, caller: Caller) -> int:
    async with svc.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM jobs WHERE owner_id = :o"), {"o": caller.owner_id})
    return int(count or 0)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/generations?template=%00", "template"),
        ("/v1/generations?base_model=a%00b", "base_model"),
        ("/v1/templates/a%00b", "name"),
        ("/v1/templates/txt2img?format=%7f", "format"),
        ("/v1/generations/a%00/images/0", "id"),
    ],
)
async def test_control_characters_in_query_and_path_are_422(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, path: str, field: str
) -> None:
    url = URL(generation_service.url + path, encoded=True)
    async with http.get(url, headers=me.headers) as response:
        problem = await _problem(response, 422)
    assert [e["field"] for e in problem["errors"]] == [field]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base_model": "a\x00b"}, "base_model"),
        ({"prompt": "a lighthouse\x00"}, "prompt"),
        ({"negative_prompt": "blur\x1b[31m"}, "negative_prompt"),
        ({"loras": [{"lora": LORA_A, "version": 2147483648}]}, "loras[0].version"),
        ({"loras": [{"lora": LORA_A, "strength_model": True}]}, "loras[0].strength_model"),
        ({"priority": False}, "priority"),
    ],
)
async def test_bad_strings_and_numbers_in_the_body_are_422_and_queue_nothing(
    generation_service: GenerationService,
    http: aiohttp.ClientSession,
    me: Caller,
    overrides: dict[str, Any],
    field: str,
) -> None:
    url = f"{generation_service.url}/v1/generations"
    async with http.post(url, json=txt2img(**overrides), headers=me.headers) as response:
        problem = await _problem(response, 422)
    assert field in [e["field"] for e in problem["errors"]]
    assert await _job_count(generation_service, me) == 0


@pytest.mark.parametrize("index", ["99999999999999999999", "\u0661", "-1"])
async def test_an_image_index_no_generation_can_have_is_404(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, index: str
) -> None:
    url = f"{generation_service.url}/v1/generations/{uuid.uuid4()}/images/{index}"
    async with http.get(url, headers=me.headers) as response:
        await _problem(response, 404)


async def test_a_prompt_may_keep_its_line_breaks(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    url = f"{generation_service.url}/v1/generations"
    async with http.post(url, json=txt2img(prompt="a lighthouse\n\tat dawn\r\n"), headers=me.headers) as response:
        assert response.status == 202, await response.text()


async def _pieces(total: int, size: int) -> AsyncIterator[bytes]:
    yield b'{"base_model": "sd15-test.safetensors", "prompt": "x", "pad": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


async def test_a_body_larger_than_the_read_buffer_is_read_to_its_end(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    """200 KB (under this endpoint's limit), sent chunked after ``100 Continue`` as curl does: the handler
    starts reading before the body arrives, and still reads the whole JSON, so the 422 names the unknown
    field (before: 400 "EOF while parsing" after the first piece that had arrived)."""
    headers = {**me.headers, "Content-Type": "application/json"}
    url = f"{generation_service.url}/v1/generations"
    async with http.post(url, data=_pieces(200_000, 16 * 1024), headers=headers, expect100=True) as response:
        problem = await _problem(response, 422)
    assert "pad" in [e["field"] for e in problem["errors"]]


async def test_a_body_over_the_limit_is_413_also_without_content_length(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    headers = {**me.headers, "Content-Type": "application/json"}
    url = f"{generation_service.url}/v1/generations"
    async with http.post(url, data=_pieces(10 << 20, 64 * 1024), headers=headers, expect100=True) as response:
        await _problem(response, 413)
    body = io.BytesIO(b'{"pad": "' + b"x" * (10 << 20) + b'"}')
    async with http.post(url, data=body, headers=headers) as response:  # with Content-Length
        await _problem(response, 413)
