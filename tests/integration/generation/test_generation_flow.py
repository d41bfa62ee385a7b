# SPDX-License-Identifier: Apache-2.0
"""Generations end to end through the API on the stand-in ComfyUIs: events, images in storage, rows."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from typing import Any

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import text

from orchestrator.app_keys import STORAGE, WORKER
from orchestrator.generation.pending_images import PendingImages
from orchestrator.jobs import group_commit
from orchestrator.jobs.kinds import JobContext
from tests.integration.conftest import Caller
from tests.integration.generation.conftest import (
    FLUX,
    LORA_A,
    LORA_B,
    REGISTERED_LORA,
    SDXL,
    GenerationService,
    events_of,
    get_json,
    png_data_url,
    register_lora,
    submit,
    txt2img,
)
from tests.support.db import wait_for_terminal


async def test_txt2img_streams_progress_and_stores_the_png(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id = await submit(http, svc, me, txt2img())
    events = await events_of(http, svc, me, job_id)

    types = [e.event for e in events]
    assert types[:2] == ["job.queued", "job.started"]
    assert types[-2:] == ["job.artifact", "job.succeeded"]
    progress = [e.data for e in events if e.event == "job.progress"]
    assert len(progress) >= 4
    assert [p["step"] for p in progress] == [1, 2, 3, 4]
    assert {p["stage"] for p in progress} == {"sampling"}
    assert progress[-1]["percent"] == 100.0
    assert progress[-1]["total"] == 4
    assert all("node" in p for p in progress)
    artifact = next(e.data for e in events if e.event == "job.artifact")
    assert artifact["kind"] == "image"
    assert artifact["index"] == 0
    assert artifact["url"] == f"/v1/generations/{job_id}/images/0"

    async with http.get(svc.url + artifact["url"], headers=me.headers) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        data = await response.read()
    assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    assert Image.open(io.BytesIO(data)).size == (64, 64)
    await PendingImages(svc.engine, svc.app[STORAGE], interval_s=1).sweep()  # what runs every 5 s
    assert svc.app_storage_path(f"generations/{job_id}/0.png").read_bytes() == data

    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["status"] == "succeeded"
    assert generation["seed"] == 7
    assert generation["template"] == "txt2img"
    assert generation["base_model"]["family"] == "sd15"
    assert generation["images"][0]["url"] == artifact["url"]
    assert generation["result"]["backend"] in {b.url for b in svc.backends}
    assert isinstance(generation["result"]["comfy_execution_ms"], int)
    async with svc.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT index, seed, sha256, size_bytes, width, height, params "
                    "FROM generation_images WHERE job_id = :j"
                ),
                {"j": uuid.UUID(job_id)},
            )
        ).one()
    assert (row.index, int(row.seed), row.sha256, row.size_bytes) == (0, 7, artifact["sha256"], len(data))
    assert (row.width, row.height) == (64, 64)
    assert row.params["prompt"] == "a lighthouse at dawn"
    assert row.params["steps"] == 4


def _graph_run(svc: GenerationService, job_id: str, backend: str) -> dict[str, Any]:
    """The graph the stand-in ran for the job."""
    graph: dict[str, Any] = svc.standin(backend).executor.history[job_id]["prompt"][2]
    return graph


async def test_two_lora_stack_runs_both_loaders_and_records_them(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    loras = [{"lora": LORA_A, "strength_model": 0.8}, {"lora": "style-b", "strength_clip": 0.5}]
    job_id = await submit(http, svc, me, txt2img(loras=loras))
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]

    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert [(x["lora"], x["file"]) for x in generation["loras"]] == [(LORA_A, LORA_A), ("style-b", LORA_B)]
    graph = _graph_run(svc, job_id, generation["backend"])
    loaders = [n["inputs"] for n in graph.values() if n["class_type"] == "LoraLoader"]
    assert [(x["lora_name"], x["strength_model"], x["strength_clip"]) for x in loaders] == [
        (LORA_A, 0.8, 1.0),
        (LORA_B, 1.0, 0.5),
    ]
    async with svc.engine.connect() as conn:
        recorded = await conn.scalar(
            text("SELECT loras FROM generation_images WHERE job_id = :j"), {"j": uuid.UUID(job_id)}
        )
    assert [x["file"] for x in recorded] == [LORA_A, LORA_B]


async def test_registered_lora_resolves_to_its_file_and_trigger_word(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    await register_lora(svc, me.owner_id, "zq person", "sd15", REGISTERED_LORA)
    job_id = await submit(http, svc, me, txt2img(prompt="portrait in a garden", loras=[{"lora": "zq person"}]))
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["loras"][0]["version"] == 1
    assert generation["loras"][0]["file"] == REGISTERED_LORA
    assert generation["params"]["prompt"] == "zqx, portrait in a garden"
    graph = _graph_run(svc, job_id, generation["backend"])
    texts = [n["inputs"]["text"] for n in graph.values() if n["class_type"] == "CLIPTextEncode"]
    assert "zqx, portrait in a garden" in texts


async def test_img2img_uploads_the_init_image_to_the_backend(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    body = txt2img(template="img2img", init_image=png_data_url(48, 40), denoise=0.5, width=None, height=None)
    job_id = await submit(http, svc, me, body)
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    init = generation["params"]["init_image"]
    assert (init["width"], init["height"]) == (48, 40)
    stored = svc.app_storage_path(init["key"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == init["sha256"]
    standin = svc.standin(generation["backend"])
    graph = _graph_run(svc, job_id, generation["backend"])
    name = next(n["inputs"]["image"] for n in graph.values() if n["class_type"] == "LoadImage")
    assert standin.files.input_path(name).read_bytes() == stored  # type: ignore[union-attr]


async def test_batch_of_two_on_sdxl_uses_the_header_family_defaults(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id = await submit(http, svc, me, txt2img(base_model=SDXL, width=None, height=None, batch_size=2, seed=None))
    events = await events_of(http, svc, me, job_id)
    artifacts = [e.data for e in events if e.event == "job.artifact"]
    assert [a["index"] for a in artifacts] == [0, 1]
    assert {(a["width"], a["height"]) for a in artifacts} == {(1024, 1024)}
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["base_model"]["family"] == "sdxl"
    assert generation["base_model"]["family_source"] == "header"
    assert generation["params"]["cfg"] == 7.0
    assert isinstance(generation["seed"], int)
    assert generation["result"]["seed"] == generation["seed"]


async def test_previews_are_stored_and_announced_not_put_in_events(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id = await submit(http, svc, me, txt2img(seed=11))
    events = await events_of(http, svc, me, job_id)
    previews = [e.data for e in events if e.event == "job.preview"]
    assert previews, [e.event for e in events]
    assert all({"url", "mime", "step", "node"} <= set(p) and "image" not in p for p in previews), previews
    async with http.get(svc.url + previews[-1]["url"], headers=me.headers) as response:
        assert response.status == 200
        assert response.content_type == "image/png"
        assert (await response.read()).startswith(b"\x89PNG")


async def test_a_catalog_flux_model_with_a_model_only_lora(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id = await submit(http, svc, me, txt2img(base_model=FLUX, cfg=3.0, loras=[{"lora": LORA_A}]))
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["base_model"]["family"] == "flux"
    assert generation["base_model"]["family_source"] == "catalog"
    graph = _graph_run(svc, job_id, generation["backend"])
    by_class = {node["class_type"]: node["inputs"] for node in graph.values()}
    assert by_class["UNETLoader"]["unet_name"] == "flux-test-unet.safetensors"
    assert by_class["DualCLIPLoader"]["type"] == "flux"
    assert by_class["FluxGuidance"]["guidance"] == 3.0
    assert by_class["KSampler"]["cfg"] == 1.0
    assert by_class["LoraLoaderModelOnly"]["lora_name"] == LORA_A
    assert "LoraLoader" not in by_class


async def test_a_generation_that_goes_first_is_accepted_once_its_prompt_is_queued(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its acceptance waits for the kind to say the prompt went to ComfyUI, not for the bound (a long one here):
    the generation kind says so once ComfyUI queued it (and not only by waiting for its commit, which says it
    too: left out here)."""

    async def on_record_alone(ctx: JobContext) -> bool:
        return ctx._committed is None or await asyncio.shield(ctx._committed)

    monkeypatch.setattr(group_commit, "SENT_WAIT_S", 60.0)
    monkeypatch.setattr(JobContext, "on_record", on_record_alone)
    svc = generation_service
    worker = svc.app[WORKER]
    await worker.dispatcher._claims._read_and_keep(frozenset({"generation"}), worker.dispatcher.policy())
    assert worker.dispatcher._claims.known_empty("generation")  # so it starts before its statement
    async with asyncio.timeout(10):
        job_id = await submit(http, svc, me, txt2img(seed=64))
    await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    async with svc.engine.connect() as conn:
        types = (
            await conn.execute(
                text("SELECT type FROM job_events WHERE job_id = :j ORDER BY id"), {"j": uuid.UUID(job_id)}
            )
        ).scalars()
        assert list(types)[:2] == ["job.queued", "job.started"]
