"""Every built-in template's graphs, with their parameter markers, register back to the template's request fields.

For each template and base-model family: the example graph gets a marker per request field
(:func:`comfy_workflows.marking.mark_fields`); registering it in API format and in the editor's format gives
the same input schema; each registered field has the built-in field's type, bounds and description, its default
is the example's value; and a request to the registered template builds the graph the built-in template builds
for the same values (markers folded back into the inputs they feed).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from comfy_workflows.graph import ApiGraph
from comfy_workflows.known_nodes import known_object_info, with_known_nodes
from comfy_workflows.marking import MarkedGraph, mark_fields
from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.registration import RegisteredTemplate, register_workflow, render
from comfy_workflows.templates import BaseModelSpec, BuiltWorkflow, Template, get_template, list_templates
from comfy_workflows.ui_format import api_to_ui
from tests.standin.comfyui.pack_nodes import with_pack_options
from tests.unit.comfy_workflows.conftest import SPECS

CASES = [(template.name, family) for template in list_templates() for family in ("sd15", "sdxl", "flux")]
TXT2IMG_SD15_FIELDS = [
    "base_model", "prompt", "negative_prompt", "width", "height", "steps", "cfg", "sampler", "scheduler", "seed",
    "batch_size",
]  # fmt: skip
NOT_CARRIED = {"template", "loras"}
"""Built-in fields no marked graph carries: the template's own name, and the LoRA list (a graph gets LoRA
loader nodes instead)."""


@pytest.fixture(scope="module")
def info(object_info: ObjectInfo) -> ObjectInfo:
    """A backend with every test model and the node pack installed (its markers list the backend's files)."""
    return ObjectInfo(with_pack_options({**object_info.raw, **with_known_nodes(None).raw, **object_info.raw}))


def example_build(template: Template, spec: BaseModelSpec, **values: Any) -> BuiltWorkflow:
    name = spec.checkpoint or "flux-dev"
    request = template.parse({**template.example, "base_model": name, **values})
    return template.build(request, spec, filename_prefix="atelier/example", seed_source=lambda: 0)


def marked(name: str, family: str, info: ObjectInfo) -> tuple[Template, BuiltWorkflow, MarkedGraph]:
    template = get_template(name)
    built = example_build(template, SPECS[family])
    return template, built, mark_fields(built, template.request_model, info)


def not_in_graph(template: Template, built: BuiltWorkflow) -> set[str]:
    """Request fields the example's graph does not use at all (the LoRA list; img2img's optional resize)."""
    used = {field.split("[")[0] for field in built.field_map.values()}
    return set(template.request_model.model_fields) - used - {"template"}


def registered(graph: Any, info: ObjectInfo) -> RegisteredTemplate:
    return register_workflow(graph, info, name="round-trip")


@pytest.mark.parametrize(("name", "family"), CASES)
def test_both_graphs_register_to_the_same_request_fields(name: str, family: str, info: ObjectInfo) -> None:
    template, built, result = marked(name, family, info)
    from_api = registered(result.graph, info)
    from_editor = registered(api_to_ui(result.graph, info), info)
    assert from_editor.input_schema() == from_api.input_schema()
    assert from_editor.graph == from_api.graph
    # a model with a VAE of its own (SDXL here, Flux) sets two files from base_model: no single marker for it
    assert set(result.unmarked) - not_in_graph(template, built) == ({"base_model"} if SPECS[family].vae else set())
    assert "loras" in result.unmarked
    mapped = {field for field in built.field_map.values() if "[" not in field} - set(result.unmarked)
    assert [f.name for f in from_api.fields] == [f for f in template.request_model.model_fields if f in mapped]
    builtin = template.request_model.model_json_schema()["properties"]
    assert set(builtin) - set(from_api.input_schema()["properties"]) >= NOT_CARRIED
    for field in from_api.fields:
        assert_same_field(builtin[field.name], from_api.input_schema()["properties"][field.name], field.name)


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A property with ``anyOf [X, null]`` read as X."""
    prop = dict(prop)
    for option in prop.pop("anyOf", []):
        if option.get("type") != "null":
            prop.update(option)
    return prop


def assert_same_field(builtin: dict[str, Any], registered_prop: dict[str, Any], name: str) -> None:
    """Same type, bounds and description (the default is the example's value, checked by building)."""
    ours, theirs = _plain(registered_prop), _plain(builtin)
    for key in ("type", "minimum", "maximum", "description"):
        assert ours.get(key) == theirs.get(key), f"{name}: {key} {ours.get(key)!r} != {theirs.get(key)!r}"


def test_txt2img_carries_every_scalar_field(info: ObjectInfo) -> None:
    _template, _built, result = marked("txt2img", "sd15", info)
    assert list(result.field_map.values()) == TXT2IMG_SD15_FIELDS
    classes = {result.graph[node]["class_type"] for node, _input in result.field_map}
    assert classes == {
        "AtelierCheckpointInput", "AtelierPromptInput", "AtelierIntInput", "AtelierFloatInput", "AtelierChoiceInput",
        "AtelierSeedInput",
    }  # fmt: skip
    steps = next(node for (node, _), field in result.field_map.items() if field == "steps")
    assert result.graph[steps]["inputs"] == {
        "name": "steps", "value": 20, "min": 1, "max": 150, "description": "Number of sampling steps.",
    }  # fmt: skip


def test_img2img_marks_its_image_in_place_of_load_image(info: ObjectInfo) -> None:
    _template, built, result = marked("img2img", "sd15", info)
    [load_image] = [n for n, node in built.graph.items() if node["class_type"] == "LoadImage"]
    assert load_image not in result.graph
    [(marker, value_input)] = [key for key, field in result.field_map.items() if field == "init_image"]
    assert (result.graph[marker]["class_type"], value_input) == ("AtelierImageInput", "image")
    assert [n for n, node in result.graph.items() if [marker, 0] in node["inputs"].values()]
    schema = registered(result.graph, info).input_schema()
    assert "init_image" in schema["required"]


def fold_markers(graph: ApiGraph, field_map: dict[tuple[str, str], str]) -> ApiGraph:
    """``graph`` with each marker's value put into the inputs it feeds, and the markers gone (the image marker
    back to the Load Image node it stands in for)."""
    folded = copy.deepcopy(graph)
    markers = {node for node, _input in field_map}
    for node_id, value_input in field_map:
        value = folded[node_id]["inputs"][value_input]
        if folded[node_id]["class_type"] == "AtelierImageInput":
            folded[node_id] = {"class_type": "LoadImage", "inputs": {"image": value}}
            markers.discard(node_id)
            continue
        for node in folded.values():
            for name, linked in node["inputs"].items():
                if linked == [node_id, 0]:
                    node["inputs"][name] = value
    return {n: {**node, "_meta": {}} for n, node in folded.items() if n not in markers}


def same_nodes(graph: ApiGraph) -> list[tuple[str, str]]:
    """A graph's nodes as (class, inputs JSON with node ids replaced by classes), sorted: equal for two graphs
    that differ only in node ids."""

    def named(value: Any) -> Any:
        is_link = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
        return [graph[value[0]]["class_type"], value[1]] if is_link else value

    return sorted(
        (node["class_type"], json.dumps({k: named(v) for k, v in node["inputs"].items()}, sort_keys=True))
        for node in graph.values()
    )


REQUEST_VALUES: dict[str, Any] = {
    "prompt": "a lighthouse at dusk", "negative_prompt": "fog", "steps": 7, "cfg": 5.5, "sampler": "dpmpp_2m",
    "scheduler": "karras", "seed": 1234, "width": 384, "height": 256, "batch_size": 2, "denoise": 0.4,
}  # fmt: skip


@pytest.mark.parametrize(("name", "family"), CASES)
def test_a_request_builds_what_the_builtin_template_builds(name: str, family: str, info: ObjectInfo) -> None:
    template, _built, result = marked(name, family, info)
    template_fields = registered(result.graph, info)
    carried = {f.name for f in template_fields.fields}
    values = {k: v for k, v in REQUEST_VALUES.items() if k in carried}
    if "init_image" in carried:
        values["init_image"] = "cat.png"
    rendered = render(template_fields, values, info, filename_prefix="atelier/example")
    assert rendered.issues == []
    expected = example_build(template, SPECS[family], **values)
    folded = fold_markers(rendered.built.graph, template_fields.field_map())
    if "init_image" in carried:  # Load Image came back under the marker's node id
        assert same_nodes(folded) == same_nodes(expected.graph)
    else:
        assert folded == {n: {**node, "_meta": {}} for n, node in expected.graph.items()}


def test_a_choice_outside_the_dropdown_is_named_by_its_field(info: ObjectInfo) -> None:
    _template, _built, result = marked("txt2img", "sd15", info)
    rendered = render(registered(result.graph, info), {"sampler": "no_such_sampler"}, info)
    [issue] = rendered.issues
    assert (issue.field, issue.input_name, issue.kind.value) == ("sampler", "value", "value_not_in_list")
    assert "'no_such_sampler' is not an option of 'sampler_name'" in issue.message


def test_the_editor_graph_needs_no_backend() -> None:
    template = get_template("txt2img")
    built = example_build(template, BaseModelSpec(family="sd15", checkpoint="any.safetensors"))
    known = known_object_info()
    ui = api_to_ui(mark_fields(built, template.request_model, known).graph, known)
    assert {node["type"] for node in ui["nodes"]} >= {"AtelierPromptInput", "KSampler", "AtelierChoiceInput"}
