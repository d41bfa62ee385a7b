# SPDX-License-Identifier: Apache-2.0
"""Requests that cannot run are refused before anything is queued, naming the request field."""

from __future__ import annotations

import base64
import io
import os
import uuid
from typing import Any

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import text

from tests.integration.conftest import Caller, new_caller
from tests.integration.generation.conftest import (
    FOREIGN_LORA,
    LORA_A,
    XL_LORA,
    GenerationService,
    post,
    register_lora,
    txt2img,
)

PROBLEM = "application/problem+json"


async def _jobs_of(svc: GenerationService, caller: Caller) -> int:
    async with svc.engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM jobs WHERE owner_id = :o"), {"o": caller.owner_id})
    return int(count or 0)


async def _refused(
    http: aiohttp.ClientSession, svc: GenerationService, caller: Caller, body: dict[str, Any], status: int = 422
) -> list[dict[str, Any]]:
    async with http.post(f"{svc.url}/v1/generations", json=body, headers=caller.headers) as response:
        answer = await response.json(content_type=None)
        assert response.status == status, answer
        assert response.content_type == PROBLEM
    assert await _jobs_of(svc, caller) == 0
    errors: list[dict[str, Any]] = answer.get("errors", [])
    for error in errors:
        assert "node" not in error
        assert "node_id" not in error
    return errors


async def test_unknown_checkpoint_is_refused_naming_base_model(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    errors = await _refused(http, generation_service, me, txt2img(base_model="nope.safetensors"))
    assert [e["field"] for e in errors] == ["base_model"]
    assert "nope.safetensors" in errors[0]["reason"]
    assert "sd15-test.safetensors" in errors[0]["reason"]  # what is offered instead
    assert errors[0]["type"] == "value_not_in_list"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"loras": [{"lora": LORA_A}, {"lora": "missing-lora"}]}, "loras[1].lora"),
        ({"sampler": "no_such_sampler"}, "sampler"),
        ({"scheduler": "warp"}, "scheduler"),
        ({"steps": 0}, "steps"),
        ({"width": 65}, "width"),
        ({"template": "upscale"}, "template"),
        ({"colour": "red"}, "colour"),
        ({"loras": [{"lora": LORA_A, "version": 3}]}, "loras[0].version"),
        ({"template": "img2img", "init_image": "data:image/png;base64,bm90IGFuIGltYWdl"}, "init_image"),
        ({"template": "img2img", "init_image": "%%%"}, "init_image"),
    ],
)
async def test_bad_fields_are_named(
    generation_service: GenerationService,
    http: aiohttp.ClientSession,
    me: Caller,
    overrides: dict[str, Any],
    field: str,
) -> None:
    errors = await _refused(http, generation_service, me, txt2img(**overrides))
    assert field in [e["field"] for e in errors], errors


async def test_init_image_over_the_limit_is_refused(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    noise = Image.frombytes("RGB", (265, 265), os.urandom(265 * 265 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    assert len(buffer.getvalue()) > generation_service.settings.init_image_max_bytes
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    errors = await _refused(http, generation_service, me, txt2img(template="img2img", init_image=url))
    assert errors[0]["field"] == "init_image"
    assert "larger than" in errors[0]["reason"]


async def test_body_over_the_limit_is_413(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    huge = "x" * (generation_service.settings.max_json_body_bytes + 300_000)
    await _refused(http, generation_service, me, txt2img(prompt=huge), status=413)


async def test_a_lora_for_another_family_is_refused(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    await register_lora(generation_service, me.owner_id, "xl style", "sdxl", XL_LORA)
    errors = await _refused(http, generation_service, me, txt2img(loras=[{"lora": "xl style"}]))
    assert errors[0]["field"] == "loras[0].lora"
    assert "sdxl" in errors[0]["reason"]


async def test_another_owners_lora_file_cannot_be_named(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    other = await new_caller(generation_service.engine, f"lora-owner-{uuid.uuid4().hex[:6]}")
    await register_lora(generation_service, other.owner_id, f"theirs-{uuid.uuid4().hex[:4]}", "sd15", FOREIGN_LORA)
    errors = await _refused(http, generation_service, me, txt2img(loras=[{"lora": FOREIGN_LORA}]))
    assert errors[0]["field"] == "loras[0].lora"
    assert "unknown LoRA" in errors[0]["reason"]
    status, answer = await post(http, generation_service, other, txt2img(loras=[{"lora": FOREIGN_LORA}]))
    assert status == 202, answer
