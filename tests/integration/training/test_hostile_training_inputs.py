"""Issue 8, item 1 on subjects and photos: control characters and malformed multipart bodies are 4xx
problems (422 naming the field, 400 for a body that cannot be parsed), never a 500."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos

PROBLEM = "application/problem+json"


async def _problem(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    body = await response.json(content_type=None)
    assert response.status == status, body
    assert response.content_type == PROBLEM
    return dict(body)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "a\x00b"}, "name"),
        ({"trigger_word": "zq\x07"}, "trigger_word"),
        ({"consent": {"confirmed": True, "subject_is_adult": True, "statement": "ok\x00"}}, "consent.statement"),
        ({"consent": {"confirmed": 1, "subject_is_adult": True}}, "consent.confirmed"),
        ({"consent": {"confirmed": True, "subject_is_adult": "true"}}, "consent.subject_is_adult"),
    ],
)
async def test_subject_strings_and_bools_are_checked(
    training_service: TrainingService,
    http: aiohttp.ClientSession,
    me: Caller,
    overrides: dict[str, Any],
    field: str,
) -> None:
    body: dict[str, Any] = {
        "name": "subject",
        "kind": "person",
        "trigger_word": "zxq",
        "consent": {"confirmed": True, "subject_is_adult": True},
        **overrides,
    }
    async with http.post(f"{training_service.url}/v1/subjects", json=body, headers=me.headers) as response:
        problem = await _problem(response, 422)
    assert field in [e["field"] for e in problem["errors"]]


def _multipart(boundary: str, filename_header: str, closing: bool = True) -> bytes:
    photo = face_photos()[0]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; {filename_header}\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode() if closing else b""
    return head + photo + tail


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("multipart/form-data; boundary=XyZ", _multipart("XyZ", "filename*=utf-8''a%00b.jpg"), 422),
        ("multipart/form-data; boundary=XyZ", _multipart("XyZ", 'filename="a\x1bb.jpg"'), 400),  # raw byte: unparsable
        ("multipart/form-data", _multipart("XyZ", 'filename="a.jpg"'), 400),
        ("multipart/form-data; boundary=XyZ", _multipart("XyZ", 'filename="a.jpg"', closing=False), 400),
        ("multipart/form-data; boundary=XyZ", b"--XyZ\r\nContent-Disposition: nothing\r\n\r\nx", 400),
        ("multipart/form-data; boundary=XyZ", b"garbage without any boundary", 400),
    ],
)
async def test_malformed_multipart_bodies_are_4xx_and_store_nothing(
    training_service: TrainingService,
    http: aiohttp.ClientSession,
    me: Caller,
    content_type: str,
    body: bytes,
    status: int,
) -> None:
    subject = await create_subject(http, training_service, me)
    url = f"{training_service.url}/v1/subjects/{subject['id']}/photos"
    async with http.post(url, data=body, headers={**me.headers, "Content-Type": content_type}) as response:
        problem = await _problem(response, status)
    if status == 422:
        assert problem["errors"][0]["field"] == "file.filename"
    async with http.get(url, headers=me.headers) as response:
        assert (await response.json())["items"] == []
