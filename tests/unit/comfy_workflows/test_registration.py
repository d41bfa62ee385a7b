"""Registering a graph edited in ComfyUI whose parameters are marked by the Atelier nodes; building it per request."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from comfy_workflows.issues import IssueKind
from comfy_workflows.markers import models_used
from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.registration import (
    RegisteredTemplate,
    RegistrationError,
    register_workflow,
    render,
)
from comfy_workflows.ui_format import api_to_ui
from comfy_workflows.validation import RawWorkflowPolicy
from tests.unit.comfy_workflows.conftest import offering
from tests.unit.custom_nodes.recorded import recorded_object_info

CHECKPOINT = "sd15_slim_random.safetensors"
LORA_FILE = "subj/v1/alice.safetensors"
LORA_ENTRY = "subj/v1/alice (trigger: ohwx alice)"
_OPTIONS = {
    ("AtelierLoraLoader", "lora"): [LORA_ENTRY],
    ("AtelierLoraLoaderModelOnly", "lora"): [LORA_ENTRY],
    ("AtelierCheckpointInput", "ckpt_name"): [CHECKPOINT],
    ("AtelierLoraInput", "lora_name"): [LORA_FILE],
    ("AtelierImageInput", "image"): ["cat.png"],
}


@pytest.fixture(scope="module")
def info(raw_object_info: dict[str, Any]) -> ObjectInfo:
    """The recorded /object_info of a ComfyUI with the pack installed, one Atelier LoRA and one input image."""
    ours = recorded_object_info()
    for (class_type, input_name), options in _OPTIONS.items():
        ours[class_type]["input"]["required"][input_name][1]["options"] = list(options)
    return ObjectInfo({**offering(raw_object_info, loras=[LORA_FILE]), **ours})


def marked_txt2img() -> dict[str, Any]:
    """A txt2img graph as an advanced user marks it: checkpoint, LoRA strength, prompt, seed and steps."""
    return {
        "1": {"class_type": "AtelierCheckpointInput", "inputs": {"name": "checkpoint", "ckpt_name": CHECKPOINT}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ["1", 0]}},
        "3": {"class_type": "AtelierLoraLoader", "inputs": {
            "model": ["2", 0], "clip": ["2", 1], "lora": LORA_ENTRY, "strength_model": ["4", 0], "strength_clip": 1.0,
        }},
        "4": {"class_type": "AtelierFloatInput", "inputs": {
            "name": "lora_strength", "value": 0.8, "min": 0.0, "max": 2.0, "description": " How strongly. ",
        }},
        "5": {"class_type": "AtelierPromptInput", "inputs": {"name": "prompt", "text": "a watercolor fox"}},
        "6": {"class_type": "StringConcatenate", "inputs": {
            "string_a": ["3", 2], "string_b": ["5", 0], "delimiter": ", ",
        }},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["6", 0], "clip": ["3", 1]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["3", 1]}},
        "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": {"class_type": "AtelierSeedInput", "inputs": {"name": "seed", "seed": 42}},
        "11": {"class_type": "AtelierIntInput", "inputs": {"name": "steps", "value": 20, "min": 1, "max": 50}},
        "12": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["7", 0], "negative": ["8", 0], "latent_image": ["9", 0], "seed": ["10", 0],
            "steps": ["11", 0], "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
        }},
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["2", 2]}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "mine"}},
    }  # fmt: skip


def marked_img2img() -> dict[str, Any]:
    """:func:`marked_txt2img` starting from an uploaded image (the image marker loads it)."""
    graph = marked_txt2img()
    graph["15"] = {"class_type": "AtelierImageInput", "inputs": {"name": "init_image", "image": "cat.png"}}
    graph["16"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["15", 0], "vae": ["2", 2]}}
    graph["12"]["inputs"]["latent_image"] = ["16", 0]
    graph["12"]["inputs"]["denoise"] = 0.6
    del graph["9"]
    return graph


def register(info: ObjectInfo, graph: dict[str, Any] | None = None, **kwargs: Any) -> RegisteredTemplate:
    return register_workflow(marked_txt2img() if graph is None else graph, info, name="my-fox", **kwargs)


def test_fields_come_from_the_markers(info: ObjectInfo) -> None:
    template = register(info, description="Foxes")
    assert [(f.name, f.kind, f.node_id, f.input) for f in template.fields] == [
        ("checkpoint", "checkpoint", "1", "ckpt_name"),
        ("lora_strength", "float", "4", "value"),
        ("prompt", "prompt", "5", "text"),
        ("seed", "seed", "10", "seed"),
        ("steps", "int", "11", "value"),
    ]
    assert template.field_map() == {
        ("1", "ckpt_name"): "checkpoint",
        ("4", "value"): "lora_strength",
        ("5", "text"): "prompt",
        ("10", "seed"): "seed",
        ("11", "value"): "steps",
    }
    assert template.output_node_ids == ("14",)
    assert (template.name, template.description) == ("my-fox", "Foxes")
    assert template.graph == marked_txt2img()


def test_input_schema(info: ObjectInfo) -> None:
    schema = register(info).input_schema()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "required" not in schema
    properties = schema["properties"]
    assert list(properties) == ["checkpoint", "lora_strength", "prompt", "seed", "steps"]
    assert {k: properties["steps"][k] for k in ("type", "default", "minimum", "maximum")} == {
        "type": "integer", "default": 20, "minimum": 1, "maximum": 50,
    }  # fmt: skip
    assert {k: properties["lora_strength"][k] for k in ("type", "default", "minimum", "maximum", "description")} == {
        "type": "number", "default": 0.8, "minimum": 0.0, "maximum": 2.0, "description": "How strongly.",
    }  # fmt: skip
    assert properties["prompt"]["type"] == "string"
    assert properties["prompt"]["default"] == "a watercolor fox"
    assert properties["checkpoint"]["default"] == CHECKPOINT
    assert properties["seed"]["default"] is None
    assert {"type": "integer", "minimum": 0, "maximum": 2**64 - 1} in properties["seed"]["anyOf"]


def test_image_fields_are_required(info: ObjectInfo) -> None:
    template = register(info, marked_img2img())
    schema = template.input_schema()
    assert schema["required"] == ["init_image"]
    assert "default" not in schema["properties"]["init_image"]
    with pytest.raises(ValidationError, match="init_image"):
        template.parse({})


def test_build_puts_request_values_into_the_markers(info: ObjectInfo) -> None:
    template = register(info)
    built = template.build({"prompt": "a red fox", "steps": 8, "seed": 7}, filename_prefix="job-1")
    expected = marked_txt2img()
    expected["5"]["inputs"]["text"] = "a red fox"
    expected["11"]["inputs"]["value"] = 8
    expected["10"]["inputs"]["seed"] = 7
    expected["14"]["inputs"]["filename_prefix"] = "job-1"
    assert built.graph == expected
    assert (built.template, built.seed, built.output_node_ids) == ("my-fox", 7, ("14",))
    assert built.field_map == template.field_map()
    assert built.models.checkpoint == CHECKPOINT
    assert built.models.loras == (LORA_FILE,)
    assert template.graph == marked_txt2img()  # the template itself is unchanged


def test_a_missing_seed_is_picked(info: ObjectInfo) -> None:
    built = register(info).build({}, seed_source=lambda: 123)
    assert built.seed == 123
    assert built.graph["10"]["inputs"]["seed"] == 123
    assert built.graph["14"]["inputs"]["filename_prefix"] == "mine"


def test_without_a_seed_marker_the_graphs_seed_is_reported(info: ObjectInfo) -> None:
    graph = marked_txt2img()
    del graph["10"]
    graph["12"]["inputs"]["seed"] = 99
    assert register(info, graph).build({}).seed == 99


@pytest.mark.parametrize(
    "values",
    [{"steps": 51}, {"steps": 2.5}, {"lora_strength": -0.1}, {"seed": -1}, {"prompt": 3}, {"unknown": 1}],
)
def test_values_outside_the_schema_are_refused(info: ObjectInfo, values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        register(info).build(values)


def test_render_validates_with_the_request_fields_named(info: ObjectInfo) -> None:
    template = register(info)
    ok = render(template, {"prompt": "a fox"}, info, filename_prefix="job-2")
    assert ok.issues == []
    assert ok.built.graph["14"]["inputs"]["filename_prefix"] == "job-2"
    rendered = render(template, {"checkpoint": "missing.safetensors"}, info)
    assert [(i.kind, i.node_id, i.input_name, i.field) for i in rendered.issues] == [
        (IssueKind.VALUE_NOT_IN_LIST, "1", "ckpt_name", "checkpoint"),
    ]


def test_render_checks_uploaded_images_by_name_only(info: ObjectInfo) -> None:
    template = register(info, marked_img2img())
    assert render(template, {"init_image": "uploaded-later.png"}, info).issues == []


def test_the_policy_applies_but_our_nodes_are_allowed(info: ObjectInfo) -> None:
    policy = RawWorkflowPolicy()
    with pytest.raises(RegistrationError) as caught:
        register(info, policy=policy)
    assert [(p.kind, p.node_id) for p in caught.value.problems] == [("node_class_not_allowed", "6")]
    graph = marked_txt2img()
    graph["7"]["inputs"]["text"] = ["5", 0]
    del graph["6"]
    template = register(info, graph, policy=policy)
    assert render(template, {}, info, policy=policy).issues == []


def test_a_template_survives_a_json_round_trip(info: ObjectInfo) -> None:
    template = register(info)
    again = RegisteredTemplate.model_validate(template.model_dump(mode="json"))
    assert again == template
    assert again.build({"seed": 1}).graph == template.build({"seed": 1}).graph
    assert again.input_schema() == template.input_schema()


def test_the_editor_format_registers_the_same_template(info: ObjectInfo) -> None:
    graph = marked_img2img()
    for node in graph.values():
        node["_meta"] = {"title": node["class_type"]}
        if node["class_type"].startswith("Atelier") and node["class_type"].endswith("Input"):
            node["inputs"].setdefault("description", "")  # the editor fills in optional inputs
    from_api = register(info, graph)
    from_ui = register(info, api_to_ui(graph, info))
    assert from_ui.fields == from_api.fields
    assert from_ui.graph == from_api.graph


Edit = Callable[[dict[str, Any]], None]


def _set(node: str, name: str, value: Any) -> Edit:
    return lambda graph: graph[node]["inputs"].__setitem__(name, value)


def _add(node: str, class_type: str, inputs: dict[str, Any]) -> Edit:
    return lambda graph: graph.__setitem__(node, {"class_type": class_type, "inputs": inputs})


def _unlink_steps(graph: dict[str, Any]) -> None:
    graph["12"]["inputs"]["steps"] = 20


REJECTIONS: dict[str, tuple[Edit, str, str | None]] = {
    "duplicate name": (_set("11", "name", "seed"), "duplicate_field", "11"),
    "unknown marker": (_add("20", "AtelierBoolInput", {"name": "hires", "value": True}), "unknown_marker", "20"),
    "no output node": (lambda graph: graph.pop("14"), "prompt_no_outputs", None),
    "unused marker": (_unlink_steps, "unused_marker", "11"),
    "name not a field name": (_set("11", "name", "Steps"), "bad_marker", "11"),
    "reserved name": (_set("11", "name", "template"), "bad_marker", "11"),
    "linked name": (_set("11", "name", ["5", 0]), "bad_marker", "11"),
    "linked value": (_set("5", "text", ["6", 0]), "bad_marker", "5"),
    "float for an int": (_set("11", "value", 2.5), "bad_marker", "11"),
    "bool for a float": (_set("4", "value", True), "bad_marker", "4"),
    "min above max": (_set("11", "min", 60), "bad_marker", "11"),
    "default out of bounds": (_set("4", "value", 3.0), "bad_marker", "4"),
    "bound not a number": (_set("4", "max", "2"), "bad_marker", "4"),
    "seed out of range": (_set("10", "seed", -5), "bad_marker", "10"),
    "empty file name": (_set("1", "ckpt_name", ""), "bad_marker", "1"),
    "description not text": (_set("5", "description", 3), "bad_marker", "5"),
    "unknown node class": (_add("20", "NotANode", {}), "missing_node_type", "20"),
    "value not offered": (_set("3", "lora", "subj/v9/alice"), "value_not_in_list", "3"),
}


@pytest.mark.parametrize(("edit", "kind", "node_id"), REJECTIONS.values(), ids=REJECTIONS.keys())
def test_rejections(info: ObjectInfo, edit: Edit, kind: str, node_id: str | None) -> None:
    graph = marked_txt2img()
    edit(graph)
    with pytest.raises(RegistrationError) as caught:
        register(info, graph)
    assert [(p.kind, p.node_id) for p in caught.value.problems] == [(kind, node_id)]
    assert caught.value.problems[0].to_dict()["message"] in str(caught.value)


def test_every_problem_is_reported_at_once(info: ObjectInfo) -> None:
    graph = marked_txt2img()
    graph["11"]["inputs"]["name"] = "seed"
    graph["20"] = {"class_type": "AtelierBoolInput", "inputs": {}}
    with pytest.raises(RegistrationError) as caught:
        register_workflow(graph, info, name="Bad Name")
    assert [p.kind for p in caught.value.problems] == ["bad_name", "duplicate_field", "unknown_marker"]
    assert caught.value.problems[1].field == "seed"


@pytest.mark.parametrize("name", ["txt2img", "img2img"])
def test_built_in_template_names_are_taken(info: ObjectInfo, name: str) -> None:
    with pytest.raises(RegistrationError, match="built-in template"):
        register_workflow(marked_txt2img(), info, name=name)


@pytest.mark.parametrize(
    "workflow",
    [
        {},
        {"1": "not a node"},
        {"1": {"class_type": "SaveImage"}},
        {"nodes": [{"id": 1, "type": "NotANode"}], "links": []},
    ],
)
def test_malformed_workflows(info: ObjectInfo, workflow: dict[str, Any]) -> None:
    with pytest.raises(RegistrationError) as caught:
        register_workflow(workflow, info, name="x")
    assert [p.kind for p in caught.value.problems] == ["malformed_workflow"]


def test_models_used_reads_literal_file_names() -> None:
    graph = copy.deepcopy(marked_txt2img())
    graph["20"] = {"class_type": "AtelierLoraLoaderModelOnly", "inputs": {"lora": "s/v2/b", "model": ["2", 0]}}
    graph["21"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "style.safetensors"}}
    used = models_used(graph)
    assert used.checkpoint == CHECKPOINT
    assert used.loras == ("style.safetensors", LORA_FILE, "s/v2/b.safetensors")
