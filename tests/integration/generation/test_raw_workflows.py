# SPDX-License-Identifier: Apache-2.0
"""Submitted workflows: run like templates, held to the node-class allowlist and the URL host allowlist."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Caller
from tests.integration.generation.conftest import (
    SD15,
    GenerationService,
    events_of,
    get_json,
    png_data_url,
    post,
    submit,
)


async def _example_graph(http: aiohttp.ClientSession, svc: GenerationService, caller: Caller, name: str) -> Any:
    detail = await get_json(http, svc, caller, f"/v1/templates/{name}")
    graph = copy.deepcopy(detail["api_graph"])
    for node in graph.values():
        inputs = node["inputs"]
        if "ckpt_name" in inputs:
            inputs["ckpt_name"] = SD15
        if node["class_type"] == "EmptyLatentImage":
            inputs.update(width=64, height=64)
        if "steps" in inputs:
            inputs["steps"] = 3
    return graph, detail


def _node(graph: dict[str, Any], class_type: str) -> str:
    return next(node_id for node_id, node in graph.items() if node["class_type"] == class_type)


async def test_a_submitted_workflow_runs_with_inputs_applied(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    graph, _ = await _example_graph(http, svc, me, "txt2img")
    sampler = _node(graph, "KSampler")
    job_id = await submit(http, svc, me, {"workflow": graph, "inputs": {sampler: {"seed": 99, "steps": 5}}})
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    assert [e.data["step"] for e in events if e.event == "job.progress"] == [1, 2, 3, 4, 5]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    assert generation["template"] is None
    assert generation["seed"] == 99
    assert len(generation["images"]) == 1
    ran = svc.standin(generation["backend"]).executor.history[job_id]["prompt"][2]
    save = ran[_node(ran, "SaveImage")]["inputs"]
    assert save["filename_prefix"] == f"atelier/{job_id}"
    listed = await get_json(http, svc, me, "/v1/generations?template=workflow")
    assert [g["id"] for g in listed["items"]] == [job_id]


async def test_an_editor_format_workflow_with_an_uploaded_image_runs(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    graph, detail = await _example_graph(http, svc, me, "img2img")
    loader = _node(graph, "AtelierImageInput")  # the example marks init_image with the pack's image marker
    ui_graph = detail["ui_graph"]
    assert ui_graph is not None, detail["ui_graph_unavailable"]
    checkpoint = next(node for node in ui_graph["nodes"] if node["type"] == "AtelierCheckpointInput")
    assert checkpoint["widgets_values"][1] == SD15  # the example uses a checkpoint the backends offer
    job_id = await submit(http, svc, me, {"workflow": ui_graph, "inputs": {loader: {"image": png_data_url(40, 40)}}})
    events = await events_of(http, svc, me, job_id)
    assert events[-1].event == "job.succeeded", events[-1]
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")
    ran = svc.standin(generation["backend"]).executor.history[job_id]["prompt"][2]
    assert ran[loader]["inputs"]["image"] == f"atelier_{job_id}_{loader}.png"


async def _refused(http: aiohttp.ClientSession, svc: GenerationService, me: Caller, body: Any) -> list[dict[str, Any]]:
    status, answer = await post(http, svc, me, body)
    assert status == 422, answer
    errors: list[dict[str, Any]] = answer["errors"]
    return errors


async def test_node_classes_outside_the_allowlist_are_refused(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    graph, _ = await _example_graph(http, svc, me, "txt2img")
    graph["90"] = {"class_type": "SaveAnimatedWEBP", "inputs": {"images": [_node(graph, "VAEDecode"), 0]}}
    errors = await _refused(http, svc, me, {"workflow": graph})
    assert {"field": "workflow.90", "type": "node_class_not_allowed"}.items() <= errors[0].items(), errors


async def test_remote_urls_only_to_allowed_hosts(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    graph, _ = await _example_graph(http, svc, me, "txt2img")
    encoder = _node(graph, "CLIPTextEncode")
    errors = await _refused(
        http, svc, me, {"workflow": graph, "inputs": {encoder: {"text": "style of https://evil.example.com/x.png"}}}
    )
    assert errors[0]["field"] == f"inputs.{encoder}.text"
    assert errors[0]["type"] == "remote_url_not_allowed"
    graph[encoder]["inputs"]["text"] = "see http://tracker.example.net/a"
    errors = await _refused(http, svc, me, {"workflow": graph})
    assert errors[0]["field"] == f"workflow.{encoder}.inputs.text"
    graph[encoder]["inputs"]["text"] = "like https://images.example.org/ref.png"
    status, answer = await post(http, svc, me, {"workflow": graph})
    assert status == 202, answer


async def test_bad_values_and_unknown_nodes_name_the_workflow_path(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    graph, _ = await _example_graph(http, svc, me, "txt2img")
    sampler = _node(graph, "KSampler")
    graph[sampler]["inputs"]["steps"] = 100_000
    errors = await _refused(http, svc, me, {"workflow": graph, "inputs": {"nope": {"x": 1}}})
    assert errors == [{"field": "inputs.nope", "reason": "the workflow has no node 'nope'", "type": "invalid"}]
    errors = await _refused(http, svc, me, {"workflow": graph})
    assert errors[0]["field"] == f"workflow.{sampler}.inputs.steps"
    assert errors[0]["type"] == "value_bigger_than_max"
    errors = await _refused(http, svc, me, {"workflow": {}})
    assert errors[0]["field"] == "workflow"


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd", "..\\..\\secrets.png", "sub/x.png"])
async def test_loader_file_inputs_are_never_paths_directly_or_through_inputs(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, path: str
) -> None:
    """Issue 8, item 3: nothing of it reaches ComfyUI; a file neither listed nor uploaded is refused too."""
    svc = generation_service
    graph, _ = await _example_graph(http, svc, me, "img2img")
    loader = _node(graph, "AtelierImageInput")  # the example loads its image with the pack's image marker
    graph[loader]["inputs"]["image"] = path
    errors = await _refused(http, svc, me, {"workflow": graph})
    assert (errors[0]["field"], errors[0]["type"]) == (f"workflow.{loader}.inputs.image", "file_path_not_allowed")
    graph[loader]["inputs"]["image"] = "fine.png"
    errors = await _refused(http, svc, me, {"workflow": graph, "inputs": {loader: {"image": path}}})
    assert (errors[0]["field"], errors[0]["type"]) == (f"inputs.{loader}.image", "file_path_not_allowed")
    errors = await _refused(http, svc, me, {"workflow": graph})
    assert (errors[0]["field"], errors[0]["type"]) == (f"workflow.{loader}.inputs.image", "value_not_in_list")
    graph[loader]["inputs"]["image"] = png_data_url(8, 8)
    graph["90"] = {"class_type": "LoadImage", "inputs": {"image": path}}  # ComfyUI's own loader alike
    errors = await _refused(http, svc, me, {"workflow": graph, "inputs": {loader: {"image": png_data_url(8, 8)}}})
    assert (errors[0]["field"], errors[0]["type"]) == ("workflow.90.inputs.image", "file_path_not_allowed")


@pytest.mark.parametrize(
    "text",
    ["see //169.254.169.254/latest", "see http:\\\\169.254.169.254\\x", "see http://2852039166/x", "file:///etc/x"],
)
async def test_urls_are_parsed_not_pattern_matched(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller, text: str
) -> None:
    svc = generation_service
    graph, _ = await _example_graph(http, svc, me, "txt2img")
    encoder = _node(graph, "CLIPTextEncode")
    errors = await _refused(http, svc, me, {"workflow": graph, "inputs": {encoder: {"text": text}}})
    assert (errors[0]["field"], errors[0]["type"]) == (f"inputs.{encoder}.text", "remote_url_not_allowed")
