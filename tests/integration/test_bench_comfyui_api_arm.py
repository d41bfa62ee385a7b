# SPDX-License-Identifier: Apache-2.0
"""The comfyui-api arm of bench_generation_overhead against a small stand-in of comfyui-api's ``POST /prompt``
(in front of the ComfyUI stand-in), shaped as comfyui-api 1.18.0 answers: the id it was given, the images
base64-encoded, their file names (each ``filename_prefix`` prefixed with that id) and its stats; the prompt
queued on ComfyUI under an id of ComfyUI's choosing.

The arm was also run against the real program (node dist/src/index.js) by hand; that needs Node and an npm
install, so it is not part of the suite.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from benchmarks.generation_arms import SAL_PREFIX, ComfyApiClient, history_entry, timings_of
from tests.integration.comfy.conftest import txt2img
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.support.service import serving


def _comfyui_api(comfy: str, *, answer_images: bool = True) -> web.Application:
    async def prompt(request: web.Request) -> web.Response:
        body = await request.json()
        graph: dict[str, Any] = copy.deepcopy(body["prompt"])
        for node in graph.values():
            if "filename_prefix" in node["inputs"]:
                node["inputs"]["filename_prefix"] = f"{body['id']}_{node['inputs']['filename_prefix']}"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{comfy}/prompt", json={"prompt": graph}) as response:
                prompt_id = (await response.json())["prompt_id"]
            while True:  # comfyui-api polls /history too (every second, then every 30 ms after execution_success)
                async with http.get(f"{comfy}/history/{prompt_id}") as response:
                    entry = (await response.json()).get(prompt_id)
                if entry is not None:
                    break
                await asyncio.sleep(0.01)
            files = [image for output in entry["outputs"].values() for image in output.get("images", [])]
            images = []
            for image in files:
                async with http.get(f"{comfy}/view", params=image) as response:
                    images.append(base64.b64encode(await response.read()).decode())
        return web.json_response(
            {
                **body,
                "images": images if answer_images else [],
                "filenames": [image["filename"] for image in files],
                "stats": {"comfy_execution": {}},
            }
        )

    app = web.Application()
    app.router.add_post("/prompt", prompt)
    return app


@pytest.fixture
async def standin() -> AsyncIterator[StandinComfyUI]:
    async with StandinComfyUI(StandinOptions(time_scale=0.001)) as server:
        yield server


def _graph() -> dict[str, Any]:
    graph = txt2img(steps=2)
    graph["7"]["inputs"]["filename_prefix"] = SAL_PREFIX
    return graph


async def test_the_arm_times_a_run_and_finds_comfyuis_prompt(standin: StandinComfyUI) -> None:
    async with serving(_comfyui_api(standin.url)) as url, aiohttp.ClientSession() as http:
        run = await ComfyApiClient(http, url, standin.url).run(_graph())
        entry = await history_entry(http, standin.url, run.prompt_id)

    assert run.path == "comfyui-api"
    assert (run.execution_ms, run.queue_wait_ms) == timings_of(entry)
    assert run.wall_ms >= run.execution_ms
    stamps = {kind: data["timestamp"] for kind, data in entry["status"]["messages"]}
    assert run.execution_started_at == stamps["execution_start"]
    assert run.execution_ended_at == stamps["execution_success"]
    assert run.lead_ms > -1  # ComfyUI's stamps are whole milliseconds
    assert run.tail_ms > -1
    assert run.lead_ms + run.execution_ms + run.tail_ms == pytest.approx(run.wall_ms, abs=0.01)  # epoch ms in a float
    [written] = [image["filename"] for output in entry["outputs"].values() for image in output["images"]]
    assert written.endswith(f"_{SAL_PREFIX}_00001_.png")


async def test_an_answer_without_the_images_is_an_error(standin: StandinComfyUI) -> None:
    async with serving(_comfyui_api(standin.url, answer_images=False)) as url, aiohttp.ClientSession() as http:
        with pytest.raises(RuntimeError, match="without the PNG images"):
            await ComfyApiClient(http, url, standin.url).run(_graph())
