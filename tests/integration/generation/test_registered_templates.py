# SPDX-License-Identifier: Apache-2.0
"""Templates registered from graphs edited in ComfyUI: register, list, run, replace, refuse, delete."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest

from comfy_workflows.templates import BaseModelSpec, get_template
from tests.integration.conftest import Caller, new_caller
from tests.integration.generation.conftest import (
    SD15,
    GenerationService,
    events_of,
    get_json,
    post,
    submit,
)


def _edited_graph() -> dict[str, Any]:
    """Our txt2img graph as a user would save it after marking three parameters in ComfyUI's editor."""
    template = get_template("txt2img")
    request = template.parse({"template": "txt2img", "base_model": SD15, "prompt": "x", "width": 64, "height": 64})
    built = template.build(request, BaseModelSpec(family="sd15", checkpoint=SD15), filename_prefix="edited")
    graph = copy.deepcopy(built.graph)
    positive = next(n for n, node in graph.items() if node["class_type"] == "CLIPTextEncode")
    sampler = next(n for n, node in graph.items() if node["class_type"] == "KSampler")
    graph["100"] = {"class_type": "AtelierPromptInput", "inputs": {"name": "subject", "text": "a lighthouse"}}
    graph["101"] = {"class_type": "AtelierIntInput", "inputs": {"name": "steps", "value": 4, "min": 1, "max": 8}}
    graph["102"] = {"class_type": "AtelierSeedInput", "inputs": {"name": "seed", "seed": 1}}
    graph[positive]["inputs"]["text"] = ["100", 0]
    graph[sampler]["inputs"]["steps"] = ["101", 0]
    graph[sampler]["inputs"]["seed"] = ["102", 0]
    return graph


async def _register(
    http: aiohttp.ClientSession, svc: GenerationService, caller: Caller, name: str, graph: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    body = {"name": name, "description": "lighthouses", "workflow": graph}
    async with http.post(f"{svc.url}/v1/templates", json=body, headers=caller.headers) as response:
        return response.status, await response.json(content_type=None)


async def test_a_registered_graph_runs_with_the_request_values_in_its_markers(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    status, summary = await _register(http, svc, me, "lighthouse", _edited_graph())
    assert status == 201, summary
    assert summary["registered"] is True
    assert set(summary["input_schema"]["properties"]) == {"subject", "steps", "seed"}
    assert (await _register(http, svc, me, "lighthouse", _edited_graph()))[0] == 200, "a second time replaces"

    listed = await get_json(http, svc, me, "/v1/templates")
    assert {"txt2img", "img2img", "lighthouse"} <= {t["name"] for t in listed["items"]}
    detail = await get_json(http, svc, me, "/v1/templates/lighthouse")
    assert detail["ui_graph"] is not None, detail["ui_graph_unavailable"]

    job_id = await submit(http, svc, me, {"template": "lighthouse", "subject": "a red barn", "steps": 3, "seed": 9})
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["seed"] == 9
    ran = svc.standin(generation["backend"]).executor.history[job_id]["prompt"][2]
    assert ran["100"]["inputs"]["text"] == "a red barn"
    assert ran["101"]["inputs"]["value"] == 3
    assert all(node["inputs"].get("filename_prefix", "atelier/").startswith("atelier/") for node in ran.values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"template": "lighthouse2", "steps": 20}, "steps"),
        ({"template": "lighthouse2", "colour": "red"}, "colour"),
        ({"template": "no-such-template"}, "template"),
    ],
)
async def test_bad_requests_for_a_registered_template_name_the_field(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, body: dict[str, Any], field: str
) -> None:
    assert (await _register(http, generation_service, me, "lighthouse2", _edited_graph()))[0] == 201
    status, problem = await post(http, generation_service, me, body)
    assert status == 422, problem
    assert field in [e["field"] for e in problem["errors"]]


async def test_registration_reports_every_problem_with_its_node(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    graph = _edited_graph()
    graph["103"] = {"class_type": "AtelierIntInput", "inputs": {"name": "steps", "value": 2, "min": 1, "max": 8}}
    status, problem = await _register(http, generation_service, me, "Bad Name", graph)
    assert status == 422
    types = {e["type"] for e in problem["errors"]}  # the same item keys as every other 422: field, reason, type
    assert all(set(e) == {"field", "reason", "type"} for e in problem["errors"])
    assert {"bad_name", "duplicate_field"} <= types
    assert "name" in [e["field"] for e in problem["errors"]]


async def test_templates_are_private_and_can_be_deleted(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    assert (await _register(http, svc, me, "mine", _edited_graph()))[0] == 201
    other = await new_caller(svc.engine, "someone-else-templates")
    async with http.get(f"{svc.url}/v1/templates/mine", headers=other.headers) as response:
        assert response.status == 404
    assert (await post(http, svc, other, {"template": "mine"}))[0] == 422
    async with http.delete(f"{svc.url}/v1/templates/mine", headers=me.headers) as response:
        assert response.status == 204
    assert (await post(http, svc, me, {"template": "mine"}))[0] == 422
    async with http.delete(f"{svc.url}/v1/templates/txt2img", headers=me.headers) as response:
        assert response.status == 404


async def test_a_builtin_templates_graphs_register_back_unchanged_with_its_request_fields(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    detail = await get_json(http, svc, me, "/v1/templates/txt2img")
    schemas = []
    for name, graph in (("rt-api", detail["api_graph"]), ("rt-editor", detail["ui_graph"])):
        status, summary = await _register(http, svc, me, name, graph)
        assert status == 201, summary
        schemas.append({k: v for k, v in summary["input_schema"].items() if k != "title"})
    assert schemas[0] == schemas[1]
    assert list(schemas[0]["properties"]) == [
        "base_model", "prompt", "negative_prompt", "width", "height", "steps", "cfg", "sampler", "scheduler",
        "seed", "batch_size",
    ]  # fmt: skip
    builtin = detail["input_schema"]["properties"]
    assert schemas[0]["properties"]["steps"]["description"] == builtin["steps"]["description"]

    body = {"template": "rt-editor", "prompt": "a red barn", "steps": 3, "width": 64, "height": 64, "seed": 5}
    job_id = await submit(http, svc, me, body)
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert {k: generation["params"][k] for k in ("prompt", "steps", "cfg", "sampler", "base_model")} == {
        "prompt": "a red barn", "steps": 3, "cfg": 7.0, "sampler": "euler", "base_model": SD15,
    }  # fmt: skip
    ran = svc.standin(generation["backend"]).executor.history[job_id]["prompt"][2]
    [sampler] = [node for node in ran.values() if node["class_type"] == "KSampler"]
    assert [ran[sampler["inputs"][k][0]]["inputs"] for k in ("steps", "sampler_name")] == [
        {"name": "steps", "value": 3, "min": 1, "max": 150, "description": "Number of sampling steps."},
        {"name": "sampler", "value": "euler", "description": "Sampler name as ComfyUI knows it."},
    ]
