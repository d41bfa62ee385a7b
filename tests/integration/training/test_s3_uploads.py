"""Presigned photo uploads in S3 mode (moto's S3 server): presign, PUT, complete with verdicts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.db.engine import create_engine
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, new_caller, s3_client
from tests.integration.training.conftest import TrainingService, create_subject, face_photos
from tests.support.service import running_app

BUCKET = "atelier"


@pytest.fixture
async def s3_service(fresh_database_url: str, s3_endpoint: str, tmp_path: Path) -> AsyncIterator[TrainingService]:
    """An API-only service (no worker) keeping its files in S3."""
    settings = Settings(
        database_url=fresh_database_url,
        var_dir=tmp_path / "var",
        models_dir=tmp_path / "models",
        storage_url=f"s3://{BUCKET}/svc",
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        worker_enabled=False,
    )
    engine = create_engine(fresh_database_url, pool_size=2)
    async with running_app(settings) as (_app, url):
        yield TrainingService(url=url, settings=settings, engine=engine)
    await engine.dispose()


async def _presign(
    http: aiohttp.ClientSession, svc: TrainingService, me: Caller, subject_id: str, files: list[dict[str, Any]]
) -> tuple[int, dict[str, Any]]:
    url = f"{svc.url}/v1/subjects/{subject_id}/photos/presign"
    async with http.post(url, json={"files": files}, headers=me.headers) as response:
        return response.status, await response.json(content_type=None)


async def test_presigned_uploads_get_verdicts_when_completed(
    s3_service: TrainingService, s3_endpoint: str, http: aiohttp.ClientSession
) -> None:
    svc = s3_service
    me = await new_caller(svc.engine, f"s3-{uuid.uuid4().hex[:6]}")
    subject = await create_subject(http, svc, me)
    good, bad = face_photos()[0], b"%PDF-1.7\n" + b"x" * 500
    status, problem = await _presign(
        http, svc, me, subject["id"], [{"filename": "big.jpg", "content_type": "image/jpeg", "size_bytes": 30 << 20}]
    )
    assert (status, problem["errors"][0]["field"]) == (422, "files[0].size_bytes")
    files = [
        {"filename": "good.jpg", "content_type": "image/jpeg", "size_bytes": len(good)},
        {"filename": "cv.jpg", "content_type": "image/jpeg", "size_bytes": len(bad)},
        {"filename": "later.jpg", "content_type": "image/jpeg", "size_bytes": 1000},
    ]
    status, presigned = await _presign(http, svc, me, subject["id"], files)
    assert status == 200, presigned
    uploads = presigned["uploads"]
    for upload, data in zip(uploads[:2], (good, bad), strict=True):
        async with http.put(upload["url"], data=data, headers=upload["headers"]) as response:
            assert response.status == 200, await response.text()
    ids = [u["photo_id"] for u in uploads]
    url = f"{svc.url}/v1/subjects/{subject['id']}/photos/complete"
    async with http.post(url, json={"photo_ids": ids}, headers=me.headers) as response:
        assert response.status == 200, await response.text()
        result = await response.json()
    verdicts = result["verdicts"]
    assert [(v["filename"], v["reason"]) for v in verdicts] == [
        ("good.jpg", None),
        ("cv.jpg", "not_an_image"),
        ("later.jpg", "not_uploaded"),
    ]
    assert verdicts[0]["photo_id"] == ids[0]
    async with http.get(f"{svc.url}/v1/subjects/{subject['id']}/photos", headers=me.headers) as response:
        photos = {p["id"]: p["status"] for p in (await response.json())["items"]}
    assert photos == {ids[0]: "accepted", ids[2]: "awaiting_upload"}
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"svc/subjects/{subject['id']}/")
    keys = sorted(item["Key"].removeprefix(f"svc/subjects/{subject['id']}/") for item in listed.get("Contents", []))
    assert keys == [f"photos/{ids[0]}.jpg"]  # the raw uploads are gone, the cleaned photo stays
    async with http.post(url, json={"photo_ids": [ids[0]]}, headers=me.headers) as response:
        assert response.status == 422  # already completed
