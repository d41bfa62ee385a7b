"""API format <-> UI (graph-editor) format."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.templates import get_template, list_templates
from comfy_workflows.ui_format import UIFormatError, api_to_ui, ui_to_api
from tests.unit.comfy_workflows.conftest import SPECS, lora_refs
from tests.unit.comfy_workflows.recorded import RECORDED_TXT2IMG


def titled(graph: dict[str, Any]) -> dict[str, Any]:
    """``graph`` with ``_meta.title`` set to the class name on every node."""
    result = copy.deepcopy(graph)
    for node in result.values():
        node["_meta"] = {"title": node["class_type"]}
    return result


def ui_node(workflow: dict[str, Any], node_id: int) -> dict[str, Any]:
    return next(n for n in workflow["nodes"] if n["id"] == node_id)


@pytest.mark.parametrize("lora_count", [0, 1, 3])
@pytest.mark.parametrize("family", sorted(SPECS))
@pytest.mark.parametrize("template_name", [t.name for t in list_templates()])
def test_every_template_graph_survives_api_ui_api(
    template_name: str, family: str, lora_count: int, object_info: ObjectInfo
) -> None:
    template = get_template(template_name)
    body: dict[str, Any] = {"base_model": "m", "prompt": "p", "loras": [{"lora": "x"}] * lora_count, "seed": 3}
    if template_name == "img2img":
        body.update(init_image="in.png", width=512, batch_size=2)
    built = template.build(template.parse(body), SPECS[family], loras=lora_refs(lora_count), filename_prefix="job")
    assert ui_to_api(api_to_ui(built.graph, object_info), object_info) == built.graph


def test_ksampler_widgets_follow_input_order_with_control_after_generate(object_info: ObjectInfo) -> None:
    workflow = api_to_ui(titled(RECORDED_TXT2IMG), object_info)
    sampler = ui_node(workflow, 5)
    assert sampler["widgets_values"] == [1, "fixed", 4, 7.0, "euler", "normal", 1.0]
    assert [s["name"] for s in sampler["inputs"]] == ["model", "positive", "negative", "latent_image"]
    assert [s["type"] for s in sampler["inputs"]] == ["MODEL", "CONDITIONING", "CONDITIONING", "LATENT"]
    assert sampler["outputs"] == [{"name": "LATENT", "type": "LATENT", "links": [7], "slot_index": 0}]


def test_links_array_matches_the_sockets(object_info: ObjectInfo) -> None:
    workflow = api_to_ui(titled(RECORDED_TXT2IMG), object_info)
    assert workflow["last_node_id"] == 7
    assert workflow["last_link_id"] == len(workflow["links"]) == 9
    for link_id, from_node, from_slot, to_node, to_slot, link_type in workflow["links"]:
        assert ui_node(workflow, to_node)["inputs"][to_slot]["link"] == link_id
        output = ui_node(workflow, from_node)["outputs"][from_slot]
        assert link_id in output["links"]
        assert output["type"] == link_type
    assert [1, 1, 1, 2, 0, "CLIP"] in workflow["links"]
    assert workflow["version"] == 0.4


def test_layout_runs_left_to_right_by_depth(object_info: ObjectInfo) -> None:
    workflow = api_to_ui(titled(RECORDED_TXT2IMG), object_info)
    for _, from_node, _, to_node, _, _ in workflow["links"]:
        assert ui_node(workflow, from_node)["pos"][0] < ui_node(workflow, to_node)["pos"][0]
    first_column = [n for n in workflow["nodes"] if n["pos"][0] == 50]
    assert {n["type"] for n in first_column} == {"CheckpointLoaderSimple", "EmptyLatentImage"}
    ys = sorted(n["pos"][1] for n in first_column)
    assert ys[1] >= ys[0] + ui_node(workflow, 1)["size"][1]


def test_absent_optional_widgets_get_their_default(object_info: ObjectInfo) -> None:
    graph = titled(
        {"1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "a", "clip_name2": "b", "type": "flux"}}}
    )
    workflow = api_to_ui(graph, object_info)
    assert ui_node(workflow, 1)["widgets_values"] == ["a", "b", "flux", "default"]
    assert ui_to_api(workflow, object_info)["1"]["inputs"]["device"] == "default"


def test_undeclared_inputs_survive_in_properties(object_info: ObjectInfo) -> None:
    graph = titled(RECORDED_TXT2IMG)
    graph["2"]["inputs"]["legacy_flag"] = True
    assert ui_to_api(api_to_ui(graph, object_info), object_info) == graph


def test_a_linked_widget_gets_a_widget_socket(object_info: ObjectInfo) -> None:
    graph = titled(RECORDED_TXT2IMG)
    graph["8"] = {"class_type": "PrimitiveInt", "inputs": {"value": 11}, "_meta": {"title": "Int"}}
    graph["5"]["inputs"]["seed"] = ["8", 0]
    workflow = api_to_ui(graph, object_info)
    seed_socket = ui_node(workflow, 5)["inputs"][1]
    assert seed_socket["widget"] == {"name": "seed"}
    assert seed_socket["link"] is not None
    assert ui_to_api(workflow, object_info) == graph


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        ({"a": {"class_type": "KSampler", "inputs": {}}}, "not an integer"),
        ({"1": {"class_type": "NoSuchNode", "inputs": {}}}, "not known"),
        ({"1": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0]}}}, "links to missing"),
        (
            {
                "1": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["2", 0]}},
                "2": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["1", 0]}},
            },
            "cycle",
        ),
    ],
)
def test_unconvertible_graphs_are_refused(graph: dict[str, Any], words: str, object_info: ObjectInfo) -> None:
    with pytest.raises(UIFormatError, match=words):
        api_to_ui(graph, object_info)


def _editor_workflow() -> dict[str, Any]:
    """A small editor workflow: checkpoint -> Reroute -> bypassed LoRA -> KSampler, a PrimitiveNode feeding the
    seed widget, a muted preview and a note; links in the object encoding."""

    def node(node_id: int, type_: str, inputs: list[Any], widgets: list[Any], mode: int = 0) -> dict[str, Any]:
        return {"id": node_id, "type": type_, "mode": mode, "inputs": inputs, "outputs": [], "widgets_values": widgets}

    def sock(name: str, type_: str, link: int | None, widget: bool = False) -> dict[str, Any]:
        return {"name": name, "type": type_, "link": link, **({"widget": {"name": name}} if widget else {})}

    links = [(1, 1, 0, 2, 0, "MODEL"), (2, 2, 0, 3, 0, "MODEL"), (3, 3, 0, 4, 0, "MODEL"), (4, 5, 0, 4, 1, "INT"),
             (5, 1, 1, 3, 1, "CLIP")]  # fmt: skip
    return {
        "nodes": [
            node(1, "CheckpointLoaderSimple", [], ["sd15_slim_random.safetensors"]),
            node(2, "Reroute", [sock("", "*", 1)], []),
            node(3, "LoraLoader", [sock("model", "MODEL", 2), sock("clip", "CLIP", 5)], ["x", 1, 1], mode=4),
            node(
                4,
                "KSampler",
                [
                    sock("model", "MODEL", 3),
                    sock("seed", "INT", 4, widget=True),
                    sock("positive", "CONDITIONING", None),
                ],
                [42, "randomize", 4, 7.5, "euler", "karras", 0.5],
            ),
            node(5, "PrimitiveNode", [], [42, "randomize"]),
            node(6, "PreviewImage", [sock("images", "IMAGE", None)], [], mode=2),
            node(7, "Note", [], ["remember"]),
        ],
        "links": [
            {"id": i, "origin_id": a, "origin_slot": b, "target_id": c, "target_slot": d, "type": t}
            for i, a, b, c, d, t in links
        ],
    }


def test_editor_only_nodes_reroutes_bypass_and_mute_are_resolved(object_info: ObjectInfo) -> None:
    api = ui_to_api(_editor_workflow(), object_info)
    assert sorted(api) == ["1", "4"]
    assert api["4"]["class_type"] == "KSampler"
    assert api["4"]["inputs"] == {
        "model": ["1", 0],
        "seed": 42,
        "steps": 4,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "karras",
        "denoise": 0.5,
    }
    assert api["4"]["_meta"] == {"title": "KSampler"}
    assert api["1"]["_meta"] == {"title": "Load Checkpoint"}


def test_widgets_values_by_name_are_read(object_info: ObjectInfo) -> None:
    workflow = {
        "nodes": [
            {
                "id": 3,
                "type": "EmptyLatentImage",
                "inputs": [],
                "widgets_values": {"width": 64, "height": 128, "batch_size": 2},
            }
        ],
        "links": [],
    }
    assert ui_to_api(workflow, object_info)["3"]["inputs"] == {"width": 64, "height": 128, "batch_size": 2}


def test_dangling_links_in_the_editor_format_are_refused(object_info: ObjectInfo) -> None:
    workflow = _editor_workflow()
    workflow["links"] = workflow["links"][1:]
    with pytest.raises(UIFormatError, match="link 1"):
        ui_to_api(workflow, object_info)
