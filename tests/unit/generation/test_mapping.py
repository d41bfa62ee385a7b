# SPDX-License-Identifier: Apache-2.0
"""Pure mappings of the generation feature: validation issues -> request fields, ComfyUI failures -> job
failures, output selection, image facts, progress stages, workflow facts, body error paths."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from comfy_workflows.templates import BaseModelSpec, LoraRef, Txt2ImgRequest, get_template
from comfy_workflows.validation import IssueKind, ValidationIssue
from orchestrator.comfy import (
    BackendHTTPError,
    BackendLost,
    BackendUnavailable,
    NoBackendAvailable,
    OutputImage,
    PromptRejected,
    RunSucceeded,
)
from orchestrator.generation.acceptance import issue_errors, node_fields
from orchestrator.generation.api import _untagged
from orchestrator.generation.comfy_relay import stage_of
from orchestrator.generation.kind import comfy_failure
from orchestrator.generation.outputs import describe_image, select_images
from orchestrator.generation.workflows import graph_facts, raw_issue_errors


def _issue(
    kind: IssueKind, node: str | None, class_type: str | None, name: str | None, field: str | None
) -> ValidationIssue:
    return ValidationIssue(kind, f"{kind.value} here", node, class_type, name, field)


def test_template_issues_name_request_fields_never_nodes() -> None:
    issues = [
        _issue(IssueKind.VALUE_NOT_IN_LIST, "1", "CheckpointLoaderSimple", "ckpt_name", "base_model"),
        _issue(IssueKind.VALUE_NOT_IN_LIST, "3", "LoraLoader", "lora_name", "loras[1].lora"),
        _issue(IssueKind.VALUE_NOT_IN_LIST, "3", "LoraLoader", "lora_name", "loras[1].lora"),
        _issue(IssueKind.UNKNOWN_CLASS, "2", "UNETLoader", None, None),
        _issue(IssueKind.NO_OUTPUTS, None, None, None, None),
    ]
    errors = issue_errors(issues)
    assert [e["field"] for e in errors] == ["base_model", "loras[1].lora", "base_model", "template"]
    assert all(set(e) == {"field", "reason", "type"} for e in errors)


def test_raw_issues_name_inputs_then_workflow_paths_policy_first() -> None:
    issues = [
        _issue(IssueKind.ABOVE_MAX, "5", "KSampler", "steps", None),
        _issue(IssueKind.WRONG_TYPE, "5", "KSampler", "seed", None),
        _issue(IssueKind.CLASS_NOT_ALLOWED, "9", "Evil", None, None),
        _issue(IssueKind.CYCLE, None, None, None, None),
    ]
    errors = raw_issue_errors(issues, {("5", "seed"): "inputs.5.seed"})
    assert [e["field"] for e in errors] == ["workflow.9", "workflow.5.inputs.steps", "inputs.5.seed", "workflow"]


def test_node_fields_point_loaders_at_their_request_fields() -> None:
    request = Txt2ImgRequest(base_model="m", prompt="p", loras=[{"lora": "a"}, {"lora": "b"}])
    refs = [LoraRef(name="a.safetensors"), LoraRef(name="b.safetensors")]
    built = get_template("txt2img").build(
        request, BaseModelSpec(family="sd15", checkpoint="m.safetensors"), loras=refs, filename_prefix="x/y"
    )
    fields = node_fields(built)
    assert sorted(fields.values()) == ["base_model", "loras[0]", "loras[1]"]
    loaders = {n for n, node in built.graph.items() if node["class_type"] == "LoraLoader"}
    assert {fields[n] for n in loaders} == {"loras[0]", "loras[1]"}


def test_body_error_paths_drop_the_union_tag() -> None:
    errors = [
        {"field": "txt2img.loras[0].strength_model", "reason": "too big"},
        {"field": "workflow.workflow", "reason": "not an object"},
        {"field": "", "reason": "tag"},
    ]
    assert [e["field"] for e in _untagged(errors)] == ["loras[0].strength_model", "workflow", "template"]


@pytest.mark.parametrize(
    ("error", "cls", "retryable"),
    [
        (BackendLost("gone", backend="http://a"), "backend_lost", True),
        (BackendUnavailable("refused", backend="http://a"), "backend_unavailable", True),
        (NoBackendAvailable("none"), "no_backend", True),
        (PromptRejected(400, {"type": "prompt_outputs_failed_validation"}, {}), "prompt_rejected", False),
        (BackendHTTPError(500, "boom"), "backend_error", False),
        (BackendHTTPError(429, "slow down"), "backend_error", True),
    ],
)
def test_comfy_failures_become_classed_job_failures(error: Exception, cls: str, retryable: bool) -> None:
    failure = comfy_failure(error)  # type: ignore[arg-type]
    assert (failure.error_class, failure.retryable) == (cls, retryable)


def test_select_images_keeps_template_outputs_in_order() -> None:
    images = (
        OutputImage("9", "preview.png", "", "temp"),
        OutputImage("7", "b_00002_.png", "atelier", "output"),
        OutputImage("4", "a_00001_.png", "atelier", "output"),
        OutputImage("7", "b_00003_.png", "atelier", "output"),
    )
    result = RunSucceeded("p", images, {}, 10)
    assert [i.filename for i in select_images(result, ["4", "7"])] == ["a_00001_.png", "b_00002_.png", "b_00003_.png"]
    assert len(select_images(result, None)) == 4


def test_describe_image_reads_png_headers_and_falls_back_to_pillow() -> None:
    for kind, mime in (("PNG", "image/png"), ("JPEG", "image/jpeg")):
        buffer = io.BytesIO()
        Image.new("RGB", (33, 17)).save(buffer, kind)
        assert describe_image(buffer.getvalue()) == (mime, 33, 17)
    assert describe_image(b"not an image") == ("application/octet-stream", None, None)


def test_stage_of() -> None:
    assert [
        stage_of(c) for c in ("KSampler", "SamplerCustomAdvanced", "VAEDecodeTiled", "ImageUpscaleWithModel", None)
    ] == [
        "sampling",
        "sampling",
        "decoding",
        "processing",
        "processing",
    ]


def test_graph_facts_find_the_seed_and_model_files() -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "l.safetensors", "model": ["1", 0]}},
        "3": {"class_type": "UNETLoader", "inputs": {"unet_name": "u.safetensors"}},
        "4": {"class_type": "RandomNoise", "inputs": {"noise_seed": 42}},
        "5": {"class_type": "KSampler", "inputs": {"seed": 7}},
        "6": "not a node",
    }
    seed, names, required = graph_facts(graph)
    assert seed == 42
    assert names == ["m.safetensors", "l.safetensors", "u.safetensors"]
    assert required == {"checkpoints": ["m.safetensors"], "loras": ["l.safetensors"]}
