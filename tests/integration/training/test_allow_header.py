"""Issue 8, item 9: a 405 names only the methods of the resource the path names."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.conftest import Caller
from tests.integration.training.conftest import TrainingService, create_subject


@pytest.mark.parametrize(("tail", "allowed"), [("presign", {"POST"}), ("complete", {"POST"})])
async def test_the_allow_header_of_presign_and_complete_lists_only_post(
    training_service: TrainingService, http: aiohttp.ClientSession, me: Caller, tail: str, allowed: set[str]
) -> None:
    subject = await create_subject(http, training_service, me)
    url = f"{training_service.url}/v1/subjects/{subject['id']}/photos/{tail}"
    for method in ("GET", "PUT", "DELETE"):
        async with http.request(method, url, headers=me.headers) as response:
            assert response.status == 405, (method, await response.text())
            assert response.content_type == "application/problem+json"
            assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed
