# SPDX-License-Identifier: Apache-2.0
"""Fixtures: a stand-in ComfyUI on loopback, an HTTP session, and the recorded txt2img graph."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from orchestrator.comfy import ComfyClient, ComfyConnection, RunOptions
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.standin.comfyui.recordings import run_fixture
from tests.standin.comfyui.server import default_models

#: Fast but real: every check that backs up the websocket happens within a test's time.
FAST = RunOptions(watchdog_s=2.0, poll_s=0.05, lost_after_s=0.5, connect_wait_s=2.0)


@pytest.fixture
async def standin() -> AsyncIterator[StandinComfyUI]:
    """A fresh stand-in (empty queue, history and cache) for each test."""
    async with StandinComfyUI(StandinOptions(time_scale=0.001)) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session per test."""
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client_id() -> str:
    """A unique websocket client id, as each service process has."""
    return f"atelier-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(standin: StandinComfyUI, session: aiohttp.ClientSession, client_id: str) -> ComfyClient:
    """An HTTP client of the stand-in."""
    return ComfyClient(standin.url, session, client_id)


@pytest.fixture
async def connection(
    standin: StandinComfyUI, session: aiohttp.ClientSession, client_id: str
) -> AsyncIterator[ComfyConnection]:
    """The shared websocket to the stand-in, connected."""
    conn = ComfyConnection(standin.url, session, client_id, backoff_initial_s=0.02, backoff_max_s=0.1)
    conn.start()
    assert await conn.wait_connected(5.0)
    yield conn
    await conn.close()


def txt2img(steps: int = 4, seed: int = 1, prefix: str = "atelier_it") -> dict[str, Any]:
    """The recorded txt2img graph with a few inputs changed (and a checkpoint the stand-in offers)."""
    graph: dict[str, Any] = copy.deepcopy(run_fixture("txt2img")["runs"][0]["graph"])
    graph["1"]["inputs"]["ckpt_name"] = default_models()["checkpoints"][0]
    graph["5"]["inputs"].update(steps=steps, seed=seed)
    graph["7"]["inputs"]["filename_prefix"] = prefix
    return graph


def corrupt_lora_graph() -> dict[str, Any]:
    """txt2img through a LoraLoader (node 8, as recorded) whose file is corrupt."""
    graph = txt2img(prefix="atelier_it_lora")
    lora = next(name for name in default_models()["loras"] if "corrupt" in name)
    graph["8"] = {
        "class_type": "LoraLoader",
        "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_name": lora, "strength_model": 1.0, "strength_clip": 1.0},
    }
    graph["2"]["inputs"]["clip"] = graph["3"]["inputs"]["clip"] = ["8", 1]
    graph["5"]["inputs"]["model"] = ["8", 0]
    return graph
