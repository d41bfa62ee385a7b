"""Caption modes through the API: a service with a (tiny, random) BLIP captioner trains with ``captions: auto``.

The captioner is the real transformers code path on a tiny model built from BLIP's config; the trainer is
the stand-in. Its own database: the training service of the other tests has no captioner, and its worker
must not claim these jobs (nor this worker theirs).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from orchestrator.db.engine import create_engine
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, new_caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, submit, upload
from tests.support.captioning import build_blip
from tests.support.db import scratch_database
from tests.support.service import running_app
from tests.support.sse import SseEvent, collect

DESCRIBED = re.compile(r"^zxq woman, word\d+( word\d+)*$")


@pytest.fixture(scope="module")
def captioning_settings(training_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The training settings with a tiny BLIP captioner, on a database of their own."""
    blip = build_blip(tmp_path_factory.mktemp("captioner") / "tiny-blip")
    var = tmp_path_factory.mktemp("captions-var")
    with scratch_database("captions") as url:
        yield training_settings.model_copy(
            update={
                "database_url": url,
                "var_dir": var,
                "storage_url": f"file://{var / 'storage'}",
                "captioner": str(blip),
                "captioner_device": "cpu",
                "captioner_batch_size": 2,
                "captioner_max_new_tokens": 6,
                "db_pool_size": 3,  # a second service on the shared Postgres: keep its footprint small
            }
        )


@pytest.fixture(scope="module")
async def captioning_service(captioning_settings: Settings) -> AsyncIterator[TrainingService]:
    """The service with a captioner, started once for this module."""
    engine = create_engine(captioning_settings.database_url, pool_size=2)
    async with running_app(captioning_settings) as (_app, url):
        yield TrainingService(url=url, settings=captioning_settings, engine=engine)
    await engine.dispose()


@pytest.fixture
async def caller(captioning_service: TrainingService) -> Caller:
    """An owner with an API key on the captioning service."""
    return await new_caller(captioning_service.engine, f"captions-{uuid.uuid4().hex[:8]}")


async def _subject(http: aiohttp.ClientSession, svc: TrainingService, caller: Caller) -> tuple[str, list[str]]:
    subject = await create_subject(http, svc, caller, class_word="woman")
    photos = [(f"p{i}.jpg", data) for i, data in enumerate(face_photos())]
    result = await upload(http, svc, caller, subject["id"], photos)
    assert result["accepted"] == len(photos), result
    return subject["id"], [v["photo_id"] for v in result["verdicts"]]


async def _manifest(svc: TrainingService, job_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await conn.execute(
            text("SELECT dataset_manifest FROM training_runs WHERE job_id = :id"), {"id": uuid.UUID(job_id)}
        )
        manifest: dict[str, Any] = row.scalar_one()
        return manifest


def _progress(events: list[SseEvent], stage: str) -> list[tuple[int, int]]:
    return [(e.data["step"], e.data["total"]) for e in events if e.event == "job.progress" and e.data["stage"] == stage]


async def test_auto_captions_are_written_by_the_captioner_with_the_trigger_word_first(
    captioning_service: TrainingService, http: aiohttp.ClientSession, caller: Caller
) -> None:
    svc = captioning_service
    subject, photo_ids = await _subject(http, svc, caller)
    mine = {photo_ids[1]: "standing on the moon"}
    status, accepted = await submit(http, svc, caller, subject, captions={"mode": "auto", "per_photo": mine})
    assert status == 202, accepted
    events = await collect(http, svc.url + accepted["events_url"], headers=caller.headers)
    assert events[-1].event == "job.succeeded", events[-1]
    total = len(photo_ids) - 1  # the photo with the user's caption is not described
    assert _progress(events, "captioning") == [(0, total), (2, total), (total, total)]
    stages = [e.data["stage"] for e in events if e.event == "job.progress"]
    assert stages.index("captioning") > stages.index("dataset")
    assert max(i for i, s in enumerate(stages) if s == "captioning") < stages.index("train")
    manifest = await _manifest(svc, accepted["id"])
    assert (manifest["caption_mode"], manifest["captioner"]) == ("auto", svc.settings.captioner)
    by_photo = {entry["photo_id"]: entry for entry in manifest["entries"]}
    assert by_photo[photo_ids[1]]["caption"] == "zxq woman, standing on the moon"
    assert by_photo[photo_ids[1]]["caption_source"] == "user"
    described = [by_photo[pid] for pid in photo_ids if pid != photo_ids[1]]
    assert all(DESCRIBED.match(entry["caption"]) for entry in described), described
    assert {entry["caption_source"] for entry in described} == {"auto"}
    run_dir = svc.settings.var_dir / "training" / "runs" / accepted["id"] / "dataset"
    for entry in manifest["entries"]:  # what sd-scripts reads beside each image
        assert (run_dir / entry["caption_file"]).read_text(encoding="utf-8") == entry["caption"] + "\n"


async def test_the_default_is_auto_where_a_captioner_is_configured(
    captioning_service: TrainingService, http: aiohttp.ClientSession, caller: Caller
) -> None:
    svc = captioning_service
    subject, _ = await _subject(http, svc, caller)
    status, accepted = await submit(http, svc, caller, subject)
    assert status == 202, accepted
    events = await collect(http, svc.url + accepted["events_url"], headers=caller.headers)
    assert events[-1].event == "job.succeeded", events[-1]
    manifest = await _manifest(svc, accepted["id"])
    assert manifest["caption_mode"] == "auto"
    assert all(DESCRIBED.match(entry["caption"]) for entry in manifest["entries"])


async def test_trigger_and_manual_modes(
    captioning_service: TrainingService, http: aiohttp.ClientSession, caller: Caller
) -> None:
    svc = captioning_service
    subject, photo_ids = await _subject(http, svc, caller)
    status, problem = await submit(http, svc, caller, subject, captions="manual")
    assert status == 422, problem
    assert sorted(e["field"] for e in problem["errors"]) == sorted(f"captions.per_photo.{p}" for p in photo_ids)
    every = {pid: f"photo number {n}" for n, pid in enumerate(photo_ids)}
    status, manual = await submit(http, svc, caller, subject, captions={"mode": "manual", "per_photo": every})
    assert status == 202, manual
    status, trigger = await submit(http, svc, caller, subject, captions="trigger")
    assert status == 202, trigger
    for job, expected in [(manual, "user"), (trigger, "none")]:
        events = await collect(http, svc.url + job["events_url"], headers=caller.headers)
        assert events[-1].event == "job.succeeded", events[-1]
        assert not _progress(events, "captioning")
        manifest = await _manifest(svc, job["id"])
        assert {entry["caption_source"] for entry in manifest["entries"]} == {expected}
    captions = [entry["caption"] for entry in (await _manifest(svc, manual["id"]))["entries"]]
    assert sorted(captions) == sorted(f"zxq woman, {text}" for text in every.values())
