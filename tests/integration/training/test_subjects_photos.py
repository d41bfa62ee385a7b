"""Subjects with consent, photo verdicts for every bad input, cleaned storage, owner isolation."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from typing import Any

import aiohttp
from PIL import Image

from orchestrator.training.hashing import canonical_sha256
from tests.integration.conftest import Caller, new_caller
from tests.integration.training.conftest import (
    TrainingService,
    create_subject,
    face_photos,
    png_bytes,
    submit,
    upload,
)
from tests.unit.trainer.images import astronaut, noise_image, png_header_only

PROBLEM = "application/problem+json"


async def _post_subject(
    http: aiohttp.ClientSession, svc: TrainingService, caller: Caller, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{svc.url}/v1/subjects", json=body, headers=caller.headers) as response:
        if response.status >= 400:
            assert response.content_type == PROBLEM
        return response.status, await response.json(content_type=None)


async def _subject_count(http: aiohttp.ClientSession, svc: TrainingService, caller: Caller) -> int:
    async with http.get(f"{svc.url}/v1/subjects", headers=caller.headers) as response:
        assert response.status == 200
        return len((await response.json())["items"])


async def test_a_person_needs_both_attestations_and_nothing_is_written_without_them(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    base = {"name": "Ada", "kind": "person", "trigger_word": "zxq"}
    cases = [
        ({}, {"consent.confirmed", "consent.subject_is_adult"}),
        (
            {"consent": {"confirmed": False, "subject_is_adult": False}},
            {"consent.confirmed", "consent.subject_is_adult"},
        ),
        ({"consent": {"confirmed": True, "subject_is_adult": False}}, {"consent.subject_is_adult"}),
        ({"consent": {"confirmed": False, "subject_is_adult": True}}, {"consent.confirmed"}),
    ]
    for extra, fields in cases:
        status, problem = await _post_subject(http, training_service, me, {**base, **extra})
        assert status == 422, problem
        assert {e["field"] for e in problem["errors"]} == fields
    status, problem = await _post_subject(http, training_service, me, {**base, "trigger_word": "has space"})
    assert (status, problem["errors"][0]["field"]) == (422, "trigger_word")
    assert await _subject_count(http, training_service, me) == 0
    status, style = await _post_subject(
        http, training_service, me, {"name": "Ink", "kind": "style", "trigger_word": "inkz"}
    )
    assert status == 201, style  # only people need consent


async def test_consent_record_names_who_and_when_and_its_hash(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    subject = await create_subject(http, training_service, me, name="Grace", class_word="woman")
    record = subject["consent"]
    assert record["confirmed"] is record["subject_is_adult"] is True
    assert record["recorded_by"]["owner_id"] == str(me.owner_id)
    assert uuid.UUID(record["recorded_by"]["api_key_id"])
    assert record["recorded_at"]
    assert subject["consent_sha256"] == canonical_sha256(record)
    async with http.get(f"{training_service.url}/v1/subjects/{subject['id']}", headers=me.headers) as response:
        fetched = await response.json()
    assert (fetched["consent_sha256"], fetched["class_word"], fetched["photo_count"]) == (
        subject["consent_sha256"],
        "woman",
        0,
    )
    status, problem = await _post_subject(
        http, training_service, me, {"name": "Grace", "kind": "style", "trigger_word": "grc"}
    )
    assert (status, problem["errors"][0]["field"]) == (409, "name")


def _exif_jpeg() -> bytes:
    """A photo stored sideways with EXIF orientation 6, a camera make and GPS coordinates."""
    upright = astronaut().crop((0, 0, 512, 400))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "SpyCam"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 0.0)}
    buffer = io.BytesIO()
    upright.rotate(90, expand=True).save(buffer, "JPEG", exif=exif, quality=90)
    return buffer.getvalue()


async def test_every_bad_photo_gets_its_reason_and_accepted_ones_are_stored_clean(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    subject = await create_subject(http, training_service, me)
    good = _exif_jpeg()
    truncated = png_bytes(noise_image(300, 300))
    files = [
        ("sideways.jpg", good),
        ("cv.pdf", b"%PDF-1.7\n" + b"x" * 4000),
        ("half.png", truncated[: len(truncated) // 2]),
        ("bomb.png", png_header_only(50_000, 50_000)),
        ("again.jpg", good),
        ("huge.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 2_100_000),
        ("noface.png", png_bytes(noise_image(400, 400))),
        ("tiny.png", png_bytes(noise_image(100, 100))),
    ]
    result = await upload(http, training_service, me, subject["id"], files)
    verdicts = {v["filename"]: v for v in result["verdicts"]}
    assert [v["filename"] for v in result["verdicts"]] == [name for name, _ in files]
    reasons = {name: v["reason"] for name, v in verdicts.items()}
    assert reasons == {
        "sideways.jpg": None,
        "cv.pdf": "not_an_image",
        "half.png": "truncated",
        "bomb.png": "too_many_pixels",
        "again.jpg": "duplicate",
        "huge.png": "too_large",
        "noface.png": "no_face",
        "tiny.png": "too_small",
    }
    accepted = verdicts["sideways.jpg"]
    assert verdicts["again.jpg"]["duplicate_of"] == accepted["photo_id"]
    assert (result["accepted"], result["rejected"]) == (1, 7)
    assert (accepted["width"], accepted["height"]) == (512, 400)  # EXIF orientation applied
    url = f"{training_service.url}/v1/subjects/{subject['id']}/photos"
    async with http.get(url, headers=me.headers) as response:
        photos = (await response.json())["items"]
    assert [p["id"] for p in photos] == [accepted["photo_id"]]
    stored_path = _storage_root(training_service) / f"subjects/{subject['id']}/photos/{accepted['photo_id']}.jpg"
    stored = stored_path.read_bytes()
    assert photos[0]["sha256"] == hashlib.sha256(stored).hexdigest()
    assert photos[0]["face_box"] is not None
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (512, 400)
        assert not image.getexif()
        assert b"SpyCam" not in stored
    stored_names = sorted(p.name for p in stored_path.parent.iterdir())
    assert stored_names == [stored_path.name]  # nothing of the rejected files was kept


def _storage_root(svc: TrainingService) -> Any:
    from pathlib import Path

    return Path(svc.settings.storage_url.removeprefix("file://"))


async def test_photo_delete_and_presign_in_local_mode(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    subject = await create_subject(http, training_service, me)
    result = await upload(http, training_service, me, subject["id"], [("a.jpg", face_photos()[0])])
    photo_id = result["verdicts"][0]["photo_id"]
    base = f"{training_service.url}/v1/subjects/{subject['id']}/photos"
    body = {"files": [{"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 1000}]}
    async with http.post(f"{base}/presign", json=body, headers=me.headers) as response:
        assert response.status == 409
        assert "multipart" in (await response.json())["detail"]
    async with http.delete(f"{base}/{photo_id}", headers=me.headers) as response:
        assert response.status == 204
    async with http.get(f"{base}/{photo_id}", headers=me.headers) as response:
        assert response.status == 404
    assert not any(_storage_root(training_service).glob(f"subjects/{subject['id']}/photos/*"))


async def test_training_is_refused_before_queueing_with_the_field_named(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    subject = await create_subject(http, training_service, me)
    status, problem = await submit(http, training_service, me, subject["id"])
    assert (status, problem["errors"][0]["field"]) == (422, "subject_id")
    assert "0 accepted photos" in problem["errors"][0]["reason"]
    await upload(http, training_service, me, subject["id"], [("a.jpg", face_photos()[0])])
    refused: dict[str, dict[str, Any]] = {
        "base_model": {"base_model": "nope.safetensors"},
        "base_family": {"base_model": "mystery.safetensors"},
        "subject_id": {"subject_id": str(uuid.uuid4())},
        "save_every_n_steps": {"save_every_n_steps": 10},
        "sample_every_n_steps": {"sample_every_n_steps": 2},
        "optimizer": {"optimizer": "AdamW8bit"},
        "captions.template": {"captions": {"template": "no trigger here"}},
        "captions.mode": {"captions": "bogus"},
        "captions": {"captions": "auto"},  # this service has no captioner
    }
    for field, overrides in refused.items():
        status, problem = await submit(http, training_service, me, subject["id"], **overrides)
        assert status == 422, (field, problem)
        assert problem["errors"][0]["field"] == field, problem
    async with http.get(f"{training_service.url}/v1/trainings", headers=me.headers) as response:
        assert (await response.json())["items"] == []


async def test_other_owners_see_nothing_of_mine(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller
) -> None:
    intruder = await new_caller(training_service.engine, f"intruder-{uuid.uuid4().hex[:6]}")
    subject = await create_subject(http, training_service, me)
    result = await upload(http, training_service, me, subject["id"], [("a.jpg", face_photos()[0])])
    photo_id = result["verdicts"][0]["photo_id"]
    base = f"{training_service.url}/v1/subjects/{subject['id']}"
    for method, path in [
        ("GET", base),
        ("DELETE", base),
        ("GET", f"{base}/photos"),
        ("GET", f"{base}/photos/{photo_id}"),
        ("DELETE", f"{base}/photos/{photo_id}"),
    ]:
        async with http.request(method, path, headers=intruder.headers) as response:
            assert response.status == 404, (method, path)
            assert response.content_type == PROBLEM
    form = aiohttp.FormData()
    form.add_field("file", face_photos()[1], filename="b.jpg")
    async with http.post(f"{base}/photos", data=form, headers=intruder.headers) as response:
        assert response.status == 404
    status, problem = await submit(http, training_service, intruder, subject["id"])
    assert (status, problem["errors"][0]["field"]) == (422, "subject_id")
    assert await _subject_count(http, training_service, intruder) == 0
    async with http.get(f"{base}/photos", headers=me.headers) as response:
        assert len((await response.json())["items"]) == 1
    assert json.dumps(problem).find(subject["name"]) == -1


async def test_the_openapi_document_lists_the_training_endpoints(
    training_service: TrainingService, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{training_service.url}/openapi.json") as response:
        doc = await response.json()
    paths = doc["paths"]
    for path, method in [
        ("/v1/subjects", "post"),
        ("/v1/subjects/{id}", "delete"),
        ("/v1/subjects/{id}/photos", "post"),
        ("/v1/subjects/{id}/photos/presign", "post"),
        ("/v1/trainings", "post"),
        ("/v1/trainings/{id}/resume", "post"),
        ("/v1/loras/{id}/versions/{n}/file", "get"),
    ]:
        assert method in paths[path], path
    create = doc["components"]["schemas"]["TrainingCreate"]["properties"]
    assert create["base_family"]["description"]
    assert paths["/v1/trainings"]["post"]["responses"]["503"]
