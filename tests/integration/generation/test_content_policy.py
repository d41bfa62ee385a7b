# SPDX-License-Identifier: Apache-2.0
"""The content policy on generations: every context refuses the hostile corpus (422 content-policy, nothing
queued, an audit row, a counter), benign texts and negative prompts go through, and generated images are
screened by the real classifier (the blocking path through a threshold that makes every image explicit)."""

from __future__ import annotations

import copy
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from orchestrator.api.auth import issue_key
from orchestrator.db.engine import create_engine
from orchestrator.policy import blurred_copy
from tests.integration.conftest import Caller, new_caller
from tests.integration.generation.conftest import (
    SD15,
    GenerationService,
    events_of,
    get_json,
    post,
    submit,
    txt2img,
)
from tests.integration.generation.test_registered_templates import _edited_graph, _register
from tests.support.db import scratch_database
from tests.support.service import running_app
from tests.unit.policy.corpus import HostileText, lines, one_per_class

CONTENT_POLICY = "https://lora-atelier.dev/problems/content-policy"
HOSTILE = one_per_class()


def _ids(hostile: HostileText) -> str:
    return f"{hostile.language}-{hostile.obfuscation}"


async def _queued(svc: GenerationService, owner: object) -> int:
    async with svc.engine.connect() as conn:
        jobs = await conn.scalar(text("SELECT count(*) FROM jobs WHERE owner_id = :o"), {"o": owner})
        events = await conn.scalar(text("SELECT count(*) FROM job_events WHERE owner_id = :o"), {"o": owner})
    return int(jobs) + int(events)


def assert_refused(status: int, body: dict[str, Any], field: str, rule: str = "minors_sexual") -> None:
    """A 422 content-policy refusal naming ``field`` and ``rule``."""
    assert status == 422, body
    assert body["type"] == CONTENT_POLICY, body
    assert body["rule"] == rule
    assert field in [e["field"] for e in body["errors"]], body["errors"]
    assert all(e["rule"] == rule for e in body["errors"])
    uuid.UUID(body["request_id"])


async def _raw_graph(http: aiohttp.ClientSession, svc: GenerationService, me: Caller) -> dict[str, Any]:
    detail = await get_json(http, svc, me, "/v1/templates/txt2img")
    graph = copy.deepcopy(detail["api_graph"])
    for node in graph.values():
        inputs = node["inputs"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = SD15
        if node["class_type"] == "EmptyLatentImage":
            inputs.update(width=64, height=64)
        if "steps" in inputs:
            inputs["steps"] = 3
    return graph


def _encoders(graph: dict[str, Any]) -> tuple[str, str]:
    """The node ids of the positive and the negative CLIPTextEncode."""
    sampler = next(node for node in graph.values() if node["class_type"] == "KSampler")
    return sampler["inputs"]["positive"][0], sampler["inputs"]["negative"][0]


@pytest.mark.parametrize("hostile", HOSTILE, ids=_ids)
async def test_hostile_prompts_are_refused_before_anything_is_queued(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, hostile: HostileText
) -> None:
    svc = generation_service
    assert_refused(*await post(http, svc, me, txt2img(prompt=hostile.text)), "prompt")
    graph = await _raw_graph(http, svc, me)
    positive, _ = _encoders(graph)
    graph[positive]["inputs"]["text"] = hostile.text
    assert_refused(*await post(http, svc, me, {"workflow": graph}), f"workflow.{positive}.inputs.text")
    clean = await _raw_graph(http, svc, me)
    status, body = await post(http, svc, me, {"workflow": clean, "inputs": {positive: {"text": hostile.text}}})
    assert_refused(status, body, f"inputs.{positive}.text")
    assert await _queued(svc, me.owner_id) == 0


@pytest.fixture(scope="module")
async def template_owner(generation_service: GenerationService) -> Caller:
    """An owner with the registered template ``lighthouse`` (its ``subject`` field feeds the prompt)."""
    caller = await new_caller(generation_service.engine, f"policy-templates-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession() as http:
        status, body = await _register(http, generation_service, caller, "lighthouse", _edited_graph())
    assert status == 201, body
    return caller


@pytest.mark.parametrize("hostile", HOSTILE, ids=_ids)
async def test_hostile_template_fields_and_registrations_are_refused(
    generation_service: GenerationService, http: aiohttp.ClientSession, template_owner: Caller, hostile: HostileText
) -> None:
    svc = generation_service
    status, body = await post(http, svc, template_owner, {"template": "lighthouse", "subject": hostile.text})
    assert_refused(status, body, "subject")
    graph = _edited_graph()
    graph["100"]["inputs"]["text"] = hostile.text  # the marker's registered default
    status, body = await _register(http, svc, template_owner, "hostile", graph)
    assert_refused(status, body, "workflow.100.inputs.text")
    assert await _queued(svc, template_owner.owner_id) == 0
    templates = await get_json(http, svc, template_owner, "/v1/templates")
    assert "hostile" not in {t["name"] for t in templates["items"]}


async def test_negative_prompts_may_name_what_to_avoid(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    await submit(http, svc, me, txt2img(negative_prompt="nude, naked, child, teen, nsfw"))
    graph = await _raw_graph(http, svc, me)
    positive, negative = _encoders(graph)
    graph[negative]["inputs"]["text"] = "nude child"  # reaches only the sampler's negative input
    await submit(http, svc, me, {"workflow": graph})
    graph["7"] = {
        "class_type": "ConditioningCombine",
        "inputs": {"conditioning_1": [positive, 0], "conditioning_2": [negative, 0]},
    }
    next(n for n in graph.values() if n["class_type"] == "KSampler")["inputs"]["positive"] = ["7", 0]
    assert_refused(*await post(http, svc, me, {"workflow": graph}), f"workflow.{negative}.inputs.text")


async def test_texts_of_one_workflow_are_judged_together(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    graph = await _raw_graph(http, svc, me)
    positive, _ = _encoders(graph)
    graph[positive]["inputs"]["text"] = "a child on a beach"
    graph["200"] = {
        "class_type": "CLIPTextEncode",
        "inputs": {"text": "nude", "clip": graph[positive]["inputs"]["clip"]},
    }
    graph["201"] = {
        "class_type": "ConditioningCombine",
        "inputs": {"conditioning_1": [positive, 0], "conditioning_2": ["200", 0]},
    }
    next(n for n in graph.values() if n["class_type"] == "KSampler")["inputs"]["positive"] = ["201", 0]
    status, body = await post(http, svc, me, {"workflow": graph})
    assert_refused(status, body, "workflow.200.inputs.text")
    assert f"workflow.{positive}.inputs.text" in [e["field"] for e in body["errors"]]


BENIGN = lines("benign.txt")


async def test_the_benign_corpus_is_accepted(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    sample = BENIGN[:5] + BENIGN[5::6]  # the issue's five, then every sixth (all of them: tests/unit/policy)
    refused = []
    for prompt in sample:
        status, body = await post(http, svc, me, txt2img(prompt=prompt, steps=1))
        if status != 202:
            refused.append((prompt, body))
    assert refused == []


async def test_a_refusal_is_audited_hashed_and_counted(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    hostile = "nud3 ch1ld on a b34ch"
    status, body = await post(http, svc, me, txt2img(prompt=hostile))
    assert_refused(status, body, "prompt")
    plain = await new_caller(svc.engine, f"not-admin-{uuid.uuid4().hex[:6]}")
    async with http.get(f"{svc.url}/v1/audit", headers=plain.headers) as response:
        assert response.status == 403
    admin_key = await issue_key(svc.engine, f"ops-{uuid.uuid4().hex[:6]}", admin=True)
    admin = {"Authorization": f"Bearer {admin_key.secret}"}
    async with http.get(f"{svc.url}/v1/audit", params={"owner_id": str(me.owner_id)}, headers=admin) as response:
        assert response.status == 200
        items = (await response.json())["items"]
    [row] = items
    assert row["request_id"] == body["request_id"]
    assert row["rule"] == "minors_sexual"
    assert row["context"] == "prompt"
    assert row["action"] == "refused"
    assert row["fields"] == ["prompt"]
    assert row["excerpt"] is None, "the text of a minors refusal is not kept"
    assert row["content_sha256"] == hashlib.sha256(hostile.encode()).hexdigest()
    assert "en:child" in row["detail"]["terms"]
    async with http.get(f"{svc.url}/metrics") as response:
        metrics = await response.text()
    assert 'atelier_policy_refusals_total{context="prompt",rule="minors_sexual"}' in metrics


@pytest.fixture
def screening_database_url() -> Iterator[str]:
    """A database of its own for a service whose settings differ."""
    with scratch_database("screening") as url:
        yield url


@pytest.fixture
async def screening_service(
    generation_service: GenerationService, screening_database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[GenerationService]:
    """The generation service's set-up on its own database, with every image counting as explicit."""
    settings = generation_service.settings.model_copy(
        update={
            "database_url": screening_database_url,
            "var_dir": tmp_path,
            "storage_url": f"file://{tmp_path / 'storage'}",
            "content_image_threshold": 0.0,
            "content_image_action": getattr(request, "param", "fail"),
        }
    )
    engine = create_engine(screening_database_url, pool_size=2)
    try:
        async with running_app(settings) as (app, base_url):
            yield GenerationService(base_url, app, settings, engine, generation_service.backends)
    finally:
        await engine.dispose()


async def _audit_of_job(svc: GenerationService, job_id: str) -> list[dict[str, Any]]:
    query = text("SELECT action, rule, context, detail FROM audit_events WHERE job_id = :j ORDER BY created_at")
    async with svc.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query, {"j": uuid.UUID(job_id)})]


async def test_an_explicit_image_fails_the_job_and_nothing_is_stored(
    screening_service: GenerationService, http: aiohttp.ClientSession
) -> None:
    svc = screening_service
    me = await new_caller(svc.engine, "screened")
    job_id = await submit(http, svc, me, txt2img(batch_size=2))
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.failed"
    error = events[-1].data["error"]
    assert error["class"] == "content_blocked"
    assert error["retryable"] is False
    assert error["images"] == [0, 1]
    assert "job.artifact" not in [e.event for e in events]
    assert "job.preview" not in [e.event for e in events], "explicit previews are neither stored nor announced"
    assert not svc.app_storage_path(f"generations/{job_id}/preview").exists()
    assert not list(svc.app_storage_path(f"generations/{job_id}").glob("*"))
    async with svc.engine.connect() as conn:
        query = text("SELECT count(*) FROM generation_images WHERE job_id = :j")
        assert await conn.scalar(query, {"j": uuid.UUID(job_id)}) == 0
    audit = await _audit_of_job(svc, job_id)
    assert sorted(r["detail"]["index"] for r in audit) == [0, 1]
    assert {(r["action"], r["rule"], r["context"]) for r in audit} == {("blocked", "nsfw_image", "generated_image")}
    assert all(r["detail"]["threshold"] == 0.0 for r in audit)


@pytest.mark.parametrize("screening_service", ["blur"], indirect=True)
async def test_with_blur_an_explicit_image_is_stored_blurred_and_flagged(
    screening_service: GenerationService, http: aiohttp.ClientSession
) -> None:
    svc = screening_service
    me = await new_caller(svc.engine, "blurred")
    job_id = await submit(http, svc, me, txt2img(seed=11))
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded"
    artifact = next(e.data for e in events if e.event == "job.artifact")
    assert artifact["flagged"] is True
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["result"]["flagged"] == [0]
    async with http.get(f"{svc.url}/v1/generations/{job_id}/images/0", headers=me.headers) as response:
        stored = await response.read()
    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    # what ComfyUI made (the stand-in still has it): what was stored is its blurred copy, not the image
    entry = svc.standin(generation["result"]["backend"]).executor.history[job_id]
    [image] = [i for node in entry["outputs"].values() for i in node.get("images", [])]
    params = {"filename": image["filename"], "subfolder": image["subfolder"], "type": image["type"]}
    async with http.get(f"{generation['result']['backend']}/view", params=params) as response:
        original = await response.read()
    assert stored != original
    assert stored == blurred_copy(original)
    assert [r["action"] for r in await _audit_of_job(svc, job_id)] == ["blurred"]


@pytest.fixture
async def permissive_service(
    generation_service: GenerationService, screening_database_url: str, tmp_path: Path
) -> AsyncIterator[GenerationService]:
    """The generation service's set-up on its own database under ATELIER_CONTENT_POLICY=permissive (and a
    threshold that makes every screened image explicit)."""
    settings = generation_service.settings.model_copy(
        update={
            "database_url": screening_database_url,
            "var_dir": tmp_path,
            "storage_url": f"file://{tmp_path / 'storage'}",
            "content_policy": "permissive",
            "content_image_threshold": 0.0,
        }
    )
    engine = create_engine(screening_database_url, pool_size=2)
    try:
        async with running_app(settings) as (app, base_url):
            yield GenerationService(base_url, app, settings, engine, generation_service.backends)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("adult_text", lines("adult.txt")[:6] + lines("adult.txt")[-3:])
async def test_permissive_allows_adult_content_to_adult_keys_only_and_never_minors(
    permissive_service: GenerationService, http: aiohttp.ClientSession, adult_text: str
) -> None:
    svc = permissive_service
    adult_key = await issue_key(svc.engine, f"adult-{uuid.uuid4().hex[:6]}", adult_content=True)
    adult = Caller(adult_key.owner_id, {"Authorization": f"Bearer {adult_key.secret}"})
    other = await new_caller(svc.engine, f"plain-{uuid.uuid4().hex[:6]}")
    assert_refused(*await post(http, svc, other, txt2img(prompt=adult_text)), "prompt", rule="nsfw_text")
    job_id = await submit(http, svc, adult, txt2img(prompt=adult_text, steps=1))
    events = await events_of(http, svc, adult, job_id)
    assert events[-1].event == "job.succeeded", "an adult key's images are not screened under permissive"
    status, body = await post(http, svc, adult, txt2img(prompt=f"{adult_text}, with a child"))
    assert_refused(status, body, "prompt")


async def test_permissive_still_screens_images_of_keys_without_the_flag(
    permissive_service: GenerationService, http: aiohttp.ClientSession
) -> None:
    svc = permissive_service
    other = await new_caller(svc.engine, f"plain-{uuid.uuid4().hex[:6]}")
    job_id = await submit(http, svc, other, txt2img(steps=1))
    events = await events_of(http, svc, other, job_id)
    assert events[-1].data["error"]["class"] == "content_blocked"
