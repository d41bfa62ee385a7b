"""The API under schemathesis for about a minute: no 5xx, every answer as its OpenAPI document says."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fuzz.openapi_fuzz import fuzz
from tests.fuzz.service import fuzz_target

log = logging.getLogger(__name__)
SECONDS = 50


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_fuzzing_the_documented_api_finds_no_server_error_and_no_undocumented_answer() -> None:
    async with fuzz_target() as target:
        report = await asyncio.to_thread(fuzz, target.url, target.headers, seconds=SECONDS)
    log.info("fuzz: %s", report.summary())
    assert report.requests > 200, report.summary()
    assert not report.failures, "\n\n".join(report.failures[:5])
