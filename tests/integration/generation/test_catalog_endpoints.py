# SPDX-License-Identifier: Apache-2.0
"""/v1/templates, /v1/backends, /v1/models, readiness, and generations where no backend can take them."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from comfy_workflows.ui_format import ui_to_api
from orchestrator.generation.generation_services import GENERATION
from orchestrator.settings import Settings
from tests.integration.conftest import Caller, Service, new_caller
from tests.integration.generation.conftest import (
    FLUX,
    LISTED_LORA,
    LORA_A,
    SD15,
    SDXL,
    GenerationService,
    get_json,
    register_lora,
    txt2img,
)
from tests.support.service import free_port, running_app


async def test_templates_describe_inputs_and_both_graph_formats(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    listed = await get_json(http, svc, me, "/v1/templates")
    assert [t["name"] for t in listed["items"]] == ["img2img", "txt2img"]
    img2img = next(t for t in listed["items"] if t["name"] == "img2img")
    assert "data URL" in img2img["input_schema"]["properties"]["init_image"]["description"]
    assert "priority" in img2img["input_schema"]["properties"]

    detail = await get_json(http, svc, me, "/v1/templates/txt2img")
    classes = {node["class_type"] for node in detail["api_graph"].values()}
    assert {"CheckpointLoaderSimple", "KSampler", "SaveImage", "AtelierIntInput", "AtelierCheckpointInput"} <= classes
    assert detail["example"]["base_model"] == SD15  # a checkpoint the backends offer, not a made-up name
    assert detail["unmarked_fields"] == {
        "loras": "a list of LoRAs: add Atelier LoRA loader nodes in the editor instead"
    }
    services = svc.app[GENERATION]
    backends = services.backends()
    info = await backends.checker.info(backends.pool.backends[0])
    assert ui_to_api(detail["ui_graph"], info) == {
        k: {"class_type": v["class_type"], "inputs": v["inputs"], "_meta": v["_meta"]}
        for k, v in detail["api_graph"].items()
    }
    steps = next(f for f in detail["field_map"] if f["field"] == "steps")
    assert detail["api_graph"][steps["node"]]["class_type"] == "AtelierIntInput"
    assert steps["input"] == "value"
    flux = await get_json(http, svc, me, "/v1/templates/txt2img?family=flux")
    flux_classes = {node["class_type"] for node in flux["api_graph"].values()}
    assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance"} <= flux_classes
    async with http.get(f"{svc.url}/v1/templates/upscale", headers=me.headers) as response:
        assert response.status == 404


async def test_backends_and_models(generation_service: GenerationService, http: aiohttp.ClientSession) -> None:
    svc = generation_service
    caller = await new_caller(svc.engine, f"models-{uuid.uuid4().hex[:6]}")
    backends = await get_json(http, svc, caller, "/v1/backends")
    assert backends["configured"] is True
    assert {b["url"] for b in backends["items"]} == {b.url for b in svc.backends}
    assert all(b["healthy"] and b["ready"] for b in backends["items"])

    models = await get_json(http, svc, caller, "/v1/models")
    families = {c["name"]: (c["family"], c["family_source"]) for c in models["checkpoints"]}
    assert families == {SD15: ("sd15", "header"), SDXL: ("sdxl", "header")}
    assert all(len(c["backends"]) == 2 for c in models["checkpoints"])
    flux = next(m for m in models["catalog"] if m["name"] == FLUX)
    assert flux["family"] == "flux"
    assert set(flux["files"]) == {"unet", "clip_l", "t5xxl", "vae"}
    loras = {entry["name"]: entry["registry"] for entry in models["loras"]}
    assert loras[LORA_A] is None
    assert loras[LISTED_LORA] is None  # not registered yet: any backend file is usable by name

    await register_lora(svc, caller.owner_id, "listed style", "sd15", LISTED_LORA, version=2)
    mine = {e["name"]: e["registry"] for e in (await get_json(http, svc, caller, "/v1/models"))["loras"]}
    assert mine[LISTED_LORA] == {"lora": "listed style", "version": 2, "family": "sd15", "trigger_word": "listedx"}
    for backend in svc.backends:
        backend.models["loras"].append("added-later.safetensors")
    try:
        cached = {e["name"] for e in (await get_json(http, svc, caller, "/v1/models"))["loras"]}
        fresh = {e["name"] for e in (await get_json(http, svc, caller, "/v1/models?refresh=true"))["loras"]}
    finally:
        for backend in svc.backends:
            backend.models["loras"].remove("added-later.safetensors")
    assert "added-later.safetensors" not in cached
    assert "added-later.safetensors" in fresh
    stranger = await new_caller(svc.engine, f"stranger-{uuid.uuid4().hex[:6]}")
    theirs = {e["name"] for e in (await get_json(http, svc, stranger, "/v1/models"))["loras"]}
    assert LISTED_LORA not in theirs
    assert LORA_A in theirs


async def test_readiness_counts_ready_backends(
    generation_service: GenerationService, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{generation_service.url}/readyz") as response:
        body = await response.json()
    assert response.status == 200
    assert body["checks"]["comfyui"]["ready"] == 2


async def test_without_comfyui_generations_are_503_and_readiness_passes(
    service: Service, http: aiohttp.ClientSession, caller: Caller
) -> None:
    async with http.post(f"{service.url}/v1/generations", json=txt2img(), headers=caller.headers) as response:
        assert response.status == 503
        assert "not configured" in (await response.json(content_type=None))["detail"]
    async with http.get(f"{service.url}/readyz") as response:
        assert (await response.json())["checks"]["comfyui"] == "not configured"
    backends = await get_json(http, service, caller, "/v1/backends")
    assert backends == {"configured": False, "items": []}
    detail = await get_json(http, service, caller, "/v1/templates/txt2img")
    assert detail["ui_graph"] is not None, detail["ui_graph_unavailable"]
    assert detail["example"]["base_model"] == "sd15-base.safetensors"  # the named default: nothing is offered
    types = {node["type"] for node in detail["ui_graph"]["nodes"]}
    assert {"AtelierPromptInput", "AtelierSeedInput", "KSampler"} <= types


@pytest.mark.slow
async def test_with_no_backend_answering_generations_are_503(
    generation_service: GenerationService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=generation_service.database_url,
        var_dir=tmp_path,
        storage_url=f"file://{tmp_path / 'storage'}",
        comfyui_urls=[f"http://127.0.0.1:{free_port()}"],
        comfyui_dir=None,
        comfyui_python=None,
        worker_enabled=False,
    )
    caller = await new_caller(generation_service.engine, f"down-{uuid.uuid4().hex[:6]}")
    async with running_app(settings) as (_app, url):
        async with http.post(f"{url}/v1/generations", json=txt2img(), headers=caller.headers) as response:
            assert response.status == 503
            assert "no ComfyUI backend is ready" in (await response.json(content_type=None))["detail"]
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["checks"]["comfyui"]["ready"] == 0
