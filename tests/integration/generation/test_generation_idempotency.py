# SPDX-License-Identifier: Apache-2.0
"""Issue 8, item 6 for generations: a request sent again with its Idempotency-Key is answered with the first
answer; no second job, no second upload."""

from __future__ import annotations

import asyncio

import aiohttp
from sqlalchemy import text

from tests.integration.conftest import Caller
from tests.integration.generation.conftest import GenerationService, png_data_url, txt2img


async def test_a_generation_sent_again_with_its_key_creates_nothing(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    body = txt2img(template="img2img", init_image=png_data_url(32, 32), denoise=0.5)
    headers = {**me.headers, "Idempotency-Key": "gen-1"}

    async def send() -> tuple[int, dict[str, object]]:
        async with http.post(f"{svc.url}/v1/generations", json=body, headers=headers) as response:
            return response.status, await response.json()

    inputs = svc.app_storage_path("generations")
    before = len(list(inputs.rglob("init.*")))
    answers = await asyncio.gather(*(send() for _ in range(5)))
    assert {status for status, _ in answers} == {202}
    assert len({str(answer["id"]) for _, answer in answers}) == 1
    async with svc.engine.connect() as conn:
        jobs = await conn.scalar(text("SELECT count(*) FROM jobs WHERE owner_id = :o"), {"o": me.owner_id})
    assert jobs == 1
    assert len(list(inputs.rglob("init.*"))) == before + 1  # the other requests' uploads were removed
