"""The content policy on subjects and trainings: hostile names, trigger words, sample prompts, caption templates
and captions are refused (422 content-policy, nothing written or queued); a person's photos are screened by the
real classifier at upload (the refusing path through a threshold that makes every image explicit)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from orchestrator.db.engine import create_engine
from tests.integration.conftest import Caller, new_caller
from tests.integration.generation.test_content_policy import assert_refused
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, submit, upload
from tests.support.db import scratch_database
from tests.support.service import running_app
from tests.unit.policy.corpus import HostileText, one_per_class

HOSTILE = one_per_class()


def _ids(hostile: HostileText) -> str:
    return f"{hostile.language}-{hostile.obfuscation}"


async def _count(svc: TrainingService, table: str, owner: object) -> int:
    async with svc.engine.connect() as conn:
        return int(await conn.scalar(text(f"SELECT count(*) FROM {table} WHERE owner_id = :o"), {"o": owner}))


async def _post_subject(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, **body: Any
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{svc.url}/v1/subjects", json=body, headers=caller.headers) as response:
        return response.status, await response.json(content_type=None)


@pytest.mark.parametrize("hostile", HOSTILE, ids=_ids)
async def test_hostile_subject_names_are_refused(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, hostile: HostileText
) -> None:
    status, body = await _post_subject(
        http, training_service, me, name=hostile.text[:100], kind="character", trigger_word="zqx"
    )
    assert_refused(status, body, "name")
    assert await _count(training_service, "subjects", me.owner_id) == 0


@pytest.mark.parametrize("trigger", ["nude_kid", "nud3-k1d", "childporn", "nacktes-kind"])
async def test_hostile_trigger_words_are_refused(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, trigger: str
) -> None:
    status, body = await _post_subject(http, training_service, me, name="Zed", kind="style", trigger_word=trigger)
    assert_refused(status, body, "trigger_word")


@pytest.fixture(scope="module")
async def photographed(training_service: TrainingService) -> tuple[Caller, dict[str, Any], list[str]]:
    """An owner with a person subject, its consent and four accepted photos."""
    caller = await new_caller(training_service.engine, f"policy-trainings-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession() as http:
        subject = await create_subject(http, training_service, caller)
        result = await upload(
            http, training_service, caller, subject["id"], [(f"{i}.jpg", d) for i, d in enumerate(face_photos())]
        )
    assert result["accepted"] == 4, result
    return caller, subject, [v["photo_id"] for v in result["verdicts"]]


@pytest.mark.parametrize("hostile", HOSTILE, ids=_ids)
async def test_hostile_sample_prompts_and_caption_templates_are_refused(
    training_service: TrainingService,
    http: aiohttp.ClientSession,
    photographed: tuple[Caller, dict[str, Any], list[str]],
    hostile: HostileText,
) -> None:
    svc = training_service
    caller, subject, _ = photographed
    status, body = await submit(http, svc, caller, subject["id"], sample_prompts=[{"prompt": hostile.text}])
    assert_refused(status, body, "sample_prompts[0].prompt")
    status, body = await submit(http, svc, caller, subject["id"], captions={"template": f"{{trigger}} {hostile.text}"})
    assert_refused(status, body, "captions.template")
    assert await _count(svc, "jobs", caller.owner_id) == 0


async def test_captions_lora_names_and_the_subject_are_judged_together(
    training_service: TrainingService,
    http: aiohttp.ClientSession,
    photographed: tuple[Caller, dict[str, Any], list[str]],
) -> None:
    svc = training_service
    caller, subject, photo_ids = photographed
    per_photo = {photo_ids[1]: "zxq person, n a k e d, with a toddler"}
    status, body = await submit(http, svc, caller, subject["id"], captions={"per_photo": per_photo})
    assert_refused(status, body, f"captions.per_photo.{photo_ids[1]}")
    status, body = await submit(http, svc, caller, subject["id"], lora_name="teen-nudes")
    assert_refused(status, body, "lora_name")
    # a minor in one text and nudity in another: the minors rule, for both fields
    samples = [{"prompt": "zxq person holding a baby"}, {"prompt": "zxq person, nude, on a beach"}]
    status, body = await submit(http, svc, caller, subject["id"], sample_prompts=samples)
    assert_refused(status, body, "sample_prompts[0].prompt")
    assert "sample_prompts[1].prompt" in [e["field"] for e in body["errors"]]
    # adult nudity alone: the NSFW rule of the default (strict) policy
    status, body = await submit(http, svc, caller, subject["id"], sample_prompts=[{"prompt": "zxq person, nude"}])
    assert_refused(status, body, "sample_prompts[0].prompt", rule="nsfw_text")
    assert await _count(svc, "jobs", caller.owner_id) == 0


async def test_negative_sample_prompts_may_name_what_to_avoid(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = training_service
    subject = await create_subject(http, svc, me)
    await upload(http, svc, me, subject["id"], [(f"{i}.jpg", d) for i, d in enumerate(face_photos())])
    samples = [{"prompt": "zxq person on a beach", "negative_prompt": "nude, naked, child, nsfw"}]
    status, body = await submit(http, svc, me, subject["id"], sample_prompts=samples, steps=2)
    assert status == 202, body


@pytest.fixture
def screening_database_url() -> Iterator[str]:
    """A database of its own for a service whose settings differ."""
    with scratch_database("photo-screening") as url:
        yield url


@pytest.fixture
async def screening_service(
    training_service: TrainingService, screening_database_url: str, tmp_path: Path
) -> AsyncIterator[TrainingService]:
    """The training service's set-up on its own database, with every photo counting as explicit."""
    settings = training_service.settings.model_copy(
        update={
            "database_url": screening_database_url,
            "var_dir": tmp_path,
            "storage_url": f"file://{tmp_path / 'storage'}",
            "content_image_threshold": 0.0,
            "worker_enabled": False,
        }
    )
    engine = create_engine(screening_database_url, pool_size=2)
    try:
        async with running_app(settings) as (_app, base_url):
            yield TrainingService(url=base_url, settings=settings, engine=engine)
    finally:
        await engine.dispose()


async def test_a_persons_explicit_photos_are_refused_and_not_stored(
    screening_service: TrainingService, http: aiohttp.ClientSession
) -> None:
    svc = screening_service
    me = await new_caller(svc.engine, "photos")
    person = await create_subject(http, svc, me)
    files = [(f"{i}.jpg", data) for i, data in enumerate(face_photos())]
    result = await upload(http, svc, me, person["id"], files)
    assert result["accepted"] == 0
    assert [v["reason"] for v in result["verdicts"]] == ["explicit_content"] * len(files)
    assert all(v["photo_id"] is None for v in result["verdicts"])
    assert await _count(svc, "photos", me.owner_id) == 0
    storage = Path(svc.settings.storage_url.removeprefix("file://"))
    assert not list((storage / "subjects" / person["id"]).rglob("*.*"))
    async with svc.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT action, rule, context, detail FROM audit_events WHERE owner_id = :o"), {"o": me.owner_id}
            )
        ).all()
    assert sorted(r.detail["filename"] for r in rows) == sorted(name for name, _ in files)
    assert {(r.action, r.rule, r.context) for r in rows} == {("rejected", "nsfw_image", "training_photo")}
    # a style's photos are not a person's: not screened
    style = await create_subject(http, svc, me, kind="style", consent=None)
    assert (await upload(http, svc, me, style["id"], files[:1]))["accepted"] == 1
