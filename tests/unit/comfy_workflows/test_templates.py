"""Templates: every template x family x LoRA stack builds a graph the recorded backend accepts."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.templates import (
    BaseModelSpec,
    BuiltWorkflow,
    GenerationRequest,
    LoraRef,
    Template,
    UnknownTemplateError,
    get_template,
    list_templates,
)
from comfy_workflows.validation import validate_built
from tests.unit.comfy_workflows.conftest import SPECS, lora_refs
from tests.unit.comfy_workflows.recorded import RECORDED_TXT2IMG

TEMPLATES = [t.name for t in list_templates()]
FAMILIES = sorted(SPECS)


def request_for(template: Template, lora_count: int = 0, **fields: Any) -> GenerationRequest:
    """A valid request for ``template`` with ``lora_count`` LoRAs."""
    body: dict[str, Any] = {"base_model": "my-model", "prompt": "a cat in a hat", **fields}
    body["loras"] = [
        {"lora": f"lora-{i}", "strength_model": 0.5 + i / 10, "strength_clip": 0.25 + i / 10} for i in range(lora_count)
    ]
    if template.name == "img2img":
        body.setdefault("init_image", "upload_123.png")
    return template.parse(body)


def build(template_name: str, family: str, lora_count: int = 0, **fields: Any) -> BuiltWorkflow:
    template = get_template(template_name)
    request = request_for(template, lora_count, **fields)
    return template.build(request, SPECS[family], loras=lora_refs(lora_count), filename_prefix="job-1")


def classes(built: BuiltWorkflow) -> list[str]:
    return [node["class_type"] for node in built.graph.values()]


def nodes_of(built: BuiltWorkflow, class_type: str) -> list[tuple[str, dict[str, Any]]]:
    return [(node_id, node) for node_id, node in built.graph.items() if node["class_type"] == class_type]


@pytest.mark.parametrize("lora_count", [0, 1, 3])
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("template_name", TEMPLATES)
def test_every_template_and_family_validates(
    template_name: str, family: str, lora_count: int, object_info: ObjectInfo
) -> None:
    built = build(template_name, family, lora_count, seed=5)
    assert validate_built(built, object_info) == []
    assert built.output_node_ids == tuple(n for n, _ in nodes_of(built, "SaveImage"))
    assert [node["inputs"]["filename_prefix"] for _, node in nodes_of(built, "SaveImage")] == ["job-1"]
    assert built.seed == 5
    loader = "LoraLoaderModelOnly" if family == "flux" else "LoraLoader"
    assert [node["inputs"]["lora_name"] for _, node in nodes_of(built, loader)] == [
        r.name for r in lora_refs(lora_count)
    ]
    assert built.models.loras == tuple(r.name for r in lora_refs(lora_count))


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_lora_stack_chains_model_and_clip_and_feeds_the_sampler_and_prompts(family: str) -> None:
    built = build("txt2img", family, 3)
    loras = nodes_of(built, "LoraLoader")
    ckpt_id = nodes_of(built, "CheckpointLoaderSimple")[0][0]
    assert loras[0][1]["inputs"]["model"] == [ckpt_id, 0]
    assert loras[0][1]["inputs"]["clip"] == [ckpt_id, 1]
    for (prev_id, _), (_, node) in itertools.pairwise(loras):
        assert node["inputs"]["model"] == [prev_id, 0]
        assert node["inputs"]["clip"] == [prev_id, 1]
    last_id = loras[-1][0]
    assert nodes_of(built, "KSampler")[0][1]["inputs"]["model"] == [last_id, 0]
    assert all(node["inputs"]["clip"] == [last_id, 1] for _, node in nodes_of(built, "CLIPTextEncode"))
    assert [n["inputs"]["strength_clip"] for _, n in loras] == [r.strength_clip for r in lora_refs(3)]


def test_flux_uses_unet_dual_clip_vae_guidance_and_sampler_cfg_1() -> None:
    built = build("txt2img", "flux", 2, cfg=4.5)
    spec = SPECS["flux"]
    assert "CheckpointLoaderSimple" not in classes(built)
    assert nodes_of(built, "UNETLoader")[0][1]["inputs"]["unet_name"] == spec.unet
    clip = nodes_of(built, "DualCLIPLoader")[0][1]["inputs"]
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == (spec.t5xxl, spec.clip_l, "flux")
    guidance_id, guidance = nodes_of(built, "FluxGuidance")[0]
    assert guidance["inputs"]["guidance"] == 4.5
    sampler = nodes_of(built, "KSampler")[0][1]["inputs"]
    assert sampler["cfg"] == 1.0
    assert sampler["positive"] == [guidance_id, 0]
    assert sampler["scheduler"] == "simple"
    assert "EmptySD3LatentImage" in classes(built)
    assert [n["inputs"]["strength_model"] for _, n in nodes_of(built, "LoraLoaderModelOnly")] == [0.5, 0.6]
    assert built.models.names()[:4] == (spec.unet, spec.t5xxl, spec.clip_l, spec.vae)


def test_family_defaults_fill_size_cfg_and_scheduler() -> None:
    sd15 = nodes_of(build("txt2img", "sd15"), "EmptyLatentImage")[0][1]["inputs"]
    sdxl = build("txt2img", "sdxl")
    assert (sd15["width"], sd15["height"]) == (512, 512)
    latent = nodes_of(sdxl, "EmptyLatentImage")[0][1]["inputs"]
    assert (latent["width"], latent["height"]) == (1024, 1024)
    sampler = nodes_of(sdxl, "KSampler")[0][1]["inputs"]
    assert (sampler["cfg"], sampler["scheduler"], sampler["sampler_name"], sampler["steps"]) == (
        7.0,
        "normal",
        "euler",
        20,
    )


def test_vae_override_replaces_the_checkpoint_vae() -> None:
    built = build("txt2img", "sdxl")
    vae_id = nodes_of(built, "VAELoader")[0][0]
    assert nodes_of(built, "VAEDecode")[0][1]["inputs"]["vae"] == [vae_id, 0]
    assert built.models.vae == SPECS["sdxl"].vae


def test_missing_seed_is_picked_and_recorded() -> None:
    template = get_template("txt2img")
    request = request_for(template)
    built = template.build(request, SPECS["sd15"], filename_prefix="j", seed_source=lambda: 1234)
    assert built.seed == 1234
    assert nodes_of(built, "KSampler")[0][1]["inputs"]["seed"] == 1234
    seeds = {template.build(request, SPECS["sd15"], filename_prefix="j").seed for _ in range(5)}
    assert len(seeds) > 1
    assert all(0 <= s < 2**53 for s in seeds)


@pytest.mark.parametrize("family", FAMILIES)
def test_img2img_loads_encodes_and_denoises(family: str) -> None:
    built = build("img2img", family, denoise=0.4, batch_size=3)
    load_id, load = nodes_of(built, "LoadImage")[0]
    assert load["inputs"] == {"image": "upload_123.png"}
    assert "ImageScale" not in classes(built)
    encode_id, encode = nodes_of(built, "VAEEncode")[0]
    assert encode["inputs"]["pixels"] == [load_id, 0]
    repeat_id, repeat = nodes_of(built, "RepeatLatentBatch")[0]
    assert repeat["inputs"] == {"samples": [encode_id, 0], "amount": 3}
    sampler = nodes_of(built, "KSampler")[0][1]["inputs"]
    assert (sampler["denoise"], sampler["latent_image"]) == (0.4, [repeat_id, 0])
    assert "EmptyLatentImage" not in classes(built)


def test_img2img_resizes_only_when_asked() -> None:
    built = build("img2img", "sd15", width=768)
    scale = nodes_of(built, "ImageScale")[0][1]["inputs"]
    assert (scale["width"], scale["height"]) == (768, 0)
    assert "RepeatLatentBatch" not in classes(build("img2img", "sd15"))


def _resolve(request: BaseModel, path: str) -> Any:
    value: Any = request
    for name, index in re.findall(r"(\w+)(?:\[(\d+)\])?", path):
        value = getattr(value, name)
        if index:
            value = value[int(index)]
    return value


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("template_name", TEMPLATES)
def test_field_map_points_at_inputs_holding_the_request_values(template_name: str, family: str) -> None:
    template = get_template(template_name)
    request = request_for(template, 2, width=640, height=384, cfg=5.0, scheduler="karras", seed=9)
    refs = [
        LoraRef(name=f"file-{i}.safetensors", strength_model=0.5 + i / 10, strength_clip=0.25 + i / 10)
        for i in range(2)
    ]
    built = template.build(request, SPECS[family], loras=refs, filename_prefix="p")
    model_files = set(built.models.names())
    for (node_id, input_name), path in built.field_map.items():
        value = built.graph[node_id]["inputs"][input_name]
        if path == "base_model":
            assert value in model_files
        elif path.endswith(".lora"):
            assert value == refs[int(path[6])].name
        else:
            assert value == _resolve(request, path), (node_id, input_name, path)
    paths = set(built.field_map.values())
    assert {"prompt", "steps", "seed", "cfg", "sampler", "scheduler", "loras[1].lora"} <= paths
    assert ("loras[1].strength_clip" in paths) == (family != "flux")


def test_field_map_names_the_second_lora_loader() -> None:
    built = build("txt2img", "sd15", 2)
    second_id = nodes_of(built, "LoraLoader")[1][0]
    assert built.field_map[(second_id, "lora_name")] == "loras[1].lora"
    assert built.field_map[(second_id, "strength_model")] == "loras[1].strength_model"


def test_sd15_txt2img_matches_the_graph_a_real_comfyui_ran() -> None:
    template = get_template("txt2img")
    request = template.parse(
        {"base_model": "slim", "prompt": "a photo of a cat", "negative_prompt": "blurry",
         "width": 64, "height": 64, "steps": 4, "seed": 1, "cfg": 7, "sampler": "euler", "scheduler": "normal"}
    )  # fmt: skip
    built = template.build(request, SPECS["sd15"], filename_prefix="lab_txt2img")
    stripped = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in built.graph.items()}
    assert stripped == RECORDED_TXT2IMG
    assert built.output_node_ids == ("7",)


@pytest.mark.parametrize(
    "change",
    [
        {"unknown": 1},
        {"width": 100},
        {"width": 4096},
        {"height": 32},
        {"batch_size": 5},
        {"batch_size": 0},
        {"steps": 0},
        {"prompt": ""},
        {"seed": -1},
        {"seed": 2**64},
        {"sampler": "euler; rm"},
        {"loras": [{"lora": "x", "weight": 1}]},
    ],
)
@pytest.mark.parametrize("template_name", TEMPLATES)
def test_invalid_requests_are_rejected(template_name: str, change: dict[str, Any]) -> None:
    template = get_template(template_name)
    body = {"base_model": "m", "prompt": "p", "init_image": "i.png", **change}
    if template_name == "txt2img":
        body.pop("init_image")
    with pytest.raises(ValidationError):
        template.parse(body)


@pytest.mark.parametrize("change", [{"denoise": 1.5}, {"denoise": -0.1}, {"init_image": ""}])
def test_img2img_specific_bounds(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        get_template("img2img").parse({"base_model": "m", "prompt": "p", "init_image": "i.png", **change})


def test_txt2img_has_no_init_image() -> None:
    with pytest.raises(ValidationError):
        get_template("txt2img").parse({"base_model": "m", "prompt": "p", "init_image": "i.png"})


def test_resolved_loras_must_match_the_request() -> None:
    template = get_template("txt2img")
    with pytest.raises(ValueError, match="names 2 LoRAs but 1"):
        template.build(request_for(template, 2), SPECS["sd15"], loras=lora_refs(1), filename_prefix="j")


@pytest.mark.parametrize("prefix", ["", "/abs", "../up", "a/../../b"])
def test_unsafe_filename_prefixes_are_refused(prefix: str) -> None:
    template = get_template("txt2img")
    with pytest.raises(ValueError, match="filename_prefix"):
        template.build(request_for(template), SPECS["sd15"], filename_prefix=prefix)


@pytest.mark.parametrize(
    "spec", [{"family": "sd15"}, {"family": "flux", "unet": "u", "clip_l": "l", "t5xxl": "t"}, {"family": "sd3"}]
)
def test_model_specs_need_the_files_of_their_family(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BaseModelSpec.model_validate(spec)


@pytest.mark.parametrize("template_name", TEMPLATES)
def test_every_template_example_is_a_valid_request(template_name: str, object_info: ObjectInfo) -> None:
    template = get_template(template_name)
    request = template.parse(template.example)
    built = template.build(request, SPECS["sd15"], filename_prefix="example")
    assert validate_built(built, object_info) == []


def test_registry_lists_and_finds_templates() -> None:
    assert TEMPLATES == ["img2img", "txt2img"]
    assert get_template("txt2img").request_model.model_fields["template"].default == "txt2img"
    with pytest.raises(UnknownTemplateError, match="known: \\['img2img', 'txt2img'\\]"):
        get_template("inpaint")


def _properties_without_description(schema: dict[str, Any]) -> list[str]:
    missing = []
    for name, definition in [("", schema), *schema.get("$defs", {}).items()]:
        for prop, body in definition.get("properties", {}).items():
            if not body.get("description"):
                missing.append(f"{name}.{prop}")
    return missing


@pytest.mark.parametrize("template_name", TEMPLATES)
def test_every_request_field_has_a_description(template_name: str) -> None:
    schema = get_template(template_name).request_model.model_json_schema()
    assert _properties_without_description(schema) == []
    assert "priority" not in schema["properties"]
    assert schema.get("additionalProperties") is False
