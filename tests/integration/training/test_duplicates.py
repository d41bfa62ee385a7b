"""Duplicates across upload requests: the fingerprint stored with each photo catches turned, mirrored and
cropped copies later; photos stored before fingerprints still catch turned copies by their hash."""

from __future__ import annotations

import uuid

import aiohttp
from sqlalchemy import text

from tests.integration.conftest import Caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, upload
from tests.support.dedupe_set import copies_of, same_person
from tests.unit.trainer.images import encode

SQL_FINGERPRINTS = "SELECT fingerprint FROM photos WHERE subject_id = :s ORDER BY created_at"
SQL_FORGET = "UPDATE photos SET fingerprint = NULL WHERE subject_id = :s"


async def test_copies_uploaded_later_are_refused_and_other_scenes_accepted(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = training_service
    subject = await create_subject(http, svc, me)
    first = await upload(http, svc, me, subject["id"], [("first.jpg", face_photos()[0])])
    original_id = first["verdicts"][0]["photo_id"]
    async with svc.engine.connect() as conn:
        [stored] = (await conn.execute(text(SQL_FINGERPRINTS), {"s": uuid.UUID(subject["id"])})).scalars().all()
    assert stored is not None
    assert 5_000 < len(stored) < 40_000
    kinds = ("rot90", "rot180", "hflip", "crop70", "rotate+10", "rescale+jpeg")
    made = copies_of(same_person(4)[0], seed=5)  # face_photos()[0] is this photo
    files = [(f"{kind.replace('+', '_')}.jpg", encode(made[kind], "JPEG", quality=88)) for kind in kinds]
    result = await upload(http, svc, me, subject["id"], [*files, ("other.jpg", face_photos()[1])])
    verdicts = {v["filename"]: v for v in result["verdicts"]}
    for name, _ in files:
        assert (verdicts[name]["reason"], verdicts[name]["duplicate_of"]) == ("duplicate", original_id), name
    assert verdicts["other.jpg"]["accepted"], verdicts["other.jpg"]  # the same person in another scene


async def test_photos_stored_without_a_fingerprint_still_catch_turned_copies(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = training_service
    subject = await create_subject(http, svc, me)
    await upload(http, svc, me, subject["id"], [("first.jpg", face_photos()[2])])
    async with svc.engine.begin() as conn:  # as if uploaded before fingerprints existed
        await conn.execute(text(SQL_FORGET), {"s": uuid.UUID(subject["id"])})
    turned = encode(copies_of(same_person(4)[2])["rot270"], "JPEG", quality=90)
    result = await upload(http, svc, me, subject["id"], [("turned.jpg", turned)])
    assert result["verdicts"][0]["reason"] == "duplicate"
