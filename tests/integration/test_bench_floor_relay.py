# SPDX-License-Identifier: Apache-2.0
"""The floor relays of bench_generation_overhead (:mod:`benchmarks.floor_relay`) in front of the ComfyUI
stand-in: the answer comes after the output node ran, and with a database the job and both its events are
committed by then."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from benchmarks.floor_relay import app
from benchmarks.generation_arms import FloorClient, history_entry, timings_of
from orchestrator.db.engine import asyncpg_dsn
from tests.integration.comfy.conftest import txt2img
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.support.service import serving


@pytest.fixture
async def standin() -> AsyncIterator[StandinComfyUI]:
    async with StandinComfyUI(StandinOptions(time_scale=0.001)) as server:
        yield server


async def _run(comfy: str, database: str | None) -> tuple[str, dict[str, object], float, float]:
    """One run through a relay: its prompt id, ComfyUI's history entry, and the run's execution and wall."""
    async with serving(app(comfy, database)) as url, aiohttp.ClientSession() as http:
        run = await FloorClient(http, url, comfy, "relay").run(txt2img(steps=2), output_node="7")
        entry = await history_entry(http, comfy, run.prompt_id)
    assert (run.execution_ms, run.queue_wait_ms) == timings_of(entry)
    return run.prompt_id, entry, run.execution_ms, run.wall_ms


async def test_the_relay_answers_after_the_output_node_ran(standin: StandinComfyUI) -> None:
    prompt_id, entry, execution_ms, wall_ms = await _run(standin.url, None)

    assert "7" in entry["outputs"]  # type: ignore[operator]
    assert wall_ms >= execution_ms
    uuid.UUID(prompt_id)


async def test_with_a_database_the_job_and_its_events_are_committed_before_the_answer(
    standin: StandinComfyUI, database_url: str
) -> None:
    dsn = asyncpg_dsn(database_url)
    prompt_id, entry, _, _ = await _run(standin.url, dsn)

    conn = await asyncpg.connect(dsn)
    try:
        job = await conn.fetchrow("SELECT status, result FROM floor_jobs WHERE id = $1", uuid.UUID(prompt_id))
        events = await conn.fetch("SELECT type FROM floor_events WHERE job_id = $1 ORDER BY id", uuid.UUID(prompt_id))
    finally:
        await conn.close()
    assert job is not None
    assert job["status"] == "succeeded"
    assert '"images"' in job["result"]
    assert [event["type"] for event in events] == ["job.queued", "job.succeeded"]
    assert "7" in entry["outputs"]  # type: ignore[operator]
