# SPDX-License-Identifier: Apache-2.0
"""The backend pool against two stand-ins: readiness, load, affinity, failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from orchestrator.comfy import BackendLost, BackendUnavailable, NoBackendAvailable, RunSucceeded
from orchestrator.comfy.pool import BackendPool
from orchestrator.generation.checking import GraphChecker
from tests.integration.comfy.conftest import FAST, corrupt_lora_graph, txt2img
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.standin.comfyui.recordings import recorded


@pytest.fixture
async def pair() -> AsyncIterator[tuple[StandinComfyUI, StandinComfyUI]]:
    """Two independent stand-ins."""
    models = {"checkpoints": ["other.safetensors", *recorded().models["checkpoints"]]}
    async with (
        StandinComfyUI(StandinOptions(time_scale=0.001)) as first,
        StandinComfyUI(StandinOptions(time_scale=0.001, models=models)) as second,
    ):
        yield first, second


async def _pool(session: aiohttp.ClientSession, urls: list[str], **kwargs: object) -> BackendPool:
    pool = BackendPool(urls, session, probe_interval_s=60.0, run_options=FAST, reconnect_max_s=0.1, **kwargs)  # type: ignore[arg-type]
    await pool.start()
    await pool.check()
    return pool


async def test_ready_backends_least_loaded_first_then_affinity(
    pair: tuple[StandinComfyUI, StandinComfyUI], session: aiohttp.ClientSession
) -> None:
    a, b = pair
    pool = await _pool(session, [a.url, b.url])
    try:
        assert pool.ready
        assert pool.choose().url == a.url  # a tie goes to the first
        first = await pool.run(txt2img(), str(uuid.uuid4()), model_key=("sd15", ()), required_models=None)
        assert isinstance(first, RunSucceeded)
        assert first.backend == a.url
        assert pool.choose(("sdxl", ())).url == a.url
        a.hold(step=1)
        busy = asyncio.create_task(pool.backend(a.url).run(txt2img(seed=9), str(uuid.uuid4())))
        await a.wait_held()
        assert pool.choose().url == b.url  # a has a prompt in flight
        assert pool.choose(("sd15", ())).url == a.url  # ...but it has the model loaded (slack 1)
        a.release()
        await busy
    finally:
        await pool.close()


async def test_models_and_object_info_per_backend(
    pair: tuple[StandinComfyUI, StandinComfyUI], session: aiohttp.ClientSession
) -> None:
    a, b = pair
    pool = await _pool(session, [a.url, b.url])
    try:
        offered = await pool.offered_models("checkpoints")
        assert offered == {a.url: a.offered("checkpoints"), b.url: b.offered("checkpoints")}
        assert "other.safetensors" in offered[b.url]
        assert "other.safetensors" not in offered[a.url]
        assert pool.choose(required_models={"checkpoints": ["other.safetensors"]}).url == b.url
        info = await pool.backend(b.url).object_info()
        assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == sorted(b.offered("checkpoints"))
        assert await pool.backend(b.url).object_info() is info  # cached until refreshed
        assert await pool.backend(b.url).object_info(refresh=True) is not info
    finally:
        await pool.close()


async def test_a_backend_names_a_graphs_output_nodes_once_it_read_object_info(
    pair: tuple[StandinComfyUI, StandinComfyUI], session: aiohttp.ClientSession
) -> None:
    a, _ = pair
    pool = await _pool(session, [a.url])
    try:
        backend = pool.backend(a.url)
        graph = txt2img()
        before = backend.output_nodes(graph)
        await backend.object_info()
        unknown = {**graph, "99": {"class_type": "NotInstalled", "inputs": {}}}
        intermediate = {**graph, "99": {"class_type": "ImageCropV2", "inputs": {}}}  # has an intermediate output
        custom_output = {**graph, "99": {"class_type": "SaveImageWebsocket", "inputs": {}}}  # custom_nodes.*

        assert before == ()  # not read yet: a run then ends at ComfyUI's terminal message
        assert backend.output_nodes(graph) == ("7",)
        assert backend.output_nodes({**graph, "8": {"class_type": "PreviewImage", "inputs": {}}}) == ("7", "8")
        assert backend.output_nodes(unknown) == ()
        assert backend.output_nodes(intermediate) == ()
        assert backend.output_nodes(custom_output) == ()
    finally:
        await pool.close()


async def test_failed_warmup_keeps_a_backend_out(
    pair: tuple[StandinComfyUI, StandinComfyUI], session: aiohttp.ClientSession
) -> None:
    a, _ = pair
    pool = await _pool(session, [a.url], warmup_graph=corrupt_lora_graph())
    try:
        assert not pool.ready
        with pytest.raises(NoBackendAvailable):
            pool.choose()
        pool.warmup_graph = txt2img()
        await pool.check()
        assert pool.ready
    finally:
        await pool.close()


async def test_backend_lost_mid_run_fails_over_to_another(
    pair: tuple[StandinComfyUI, StandinComfyUI], session: aiohttp.ClientSession
) -> None:
    a, b = pair
    pool = await _pool(session, [a.url, b.url])
    retries: list[tuple[int, BackendUnavailable]] = []

    async def on_retry(attempt: int, error: BackendUnavailable) -> None:
        retries.append((attempt, error))

    try:
        a.hold(step=1)
        run = asyncio.create_task(pool.run(txt2img(), str(uuid.uuid4()), attempts=2, on_retry=on_retry))
        await a.wait_held()
        await a.die()
        result = await run

        assert isinstance(result, RunSucceeded)
        assert result.backend == b.url
        assert [(n, type(e)) for n, e in retries] == [(1, BackendLost)]
        assert not pool.backend(a.url).healthy
        assert pool.choose().url == b.url
        await a.revive()
        assert await pool.backend(a.url).connection.wait_connected(5.0)
        await pool.check()
        assert pool.backend(a.url).ready
    finally:
        await pool.close()


async def test_offered_names_are_made_once_per_object_info_read(
    pair: tuple[StandinComfyUI, StandinComfyUI], session: aiohttp.ClientSession
) -> None:
    a, _ = pair
    pool = await _pool(session, [a.url])
    checker = GraphChecker(pool)
    try:
        names = await checker.offered("CheckpointLoaderSimple", "ckpt_name")
        assert set(names) == set(a.offered("checkpoints"))
        assert await checker.offered("CheckpointLoaderSimple", "ckpt_name") is names  # made once per read
        await checker.info(pool.backend(a.url), refresh=True)  # what a value not in the list leads to
        again = await checker.offered("CheckpointLoaderSimple", "ckpt_name")
        assert again is not names  # made again from the new read
        assert again == names
    finally:
        await pool.close()
