"""Validation against the recorded /object_info, case by case as ComfyUI's /prompt rejects them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from comfy_workflows.issues import IssueKind, ValidationIssue
from comfy_workflows.object_info import InputDef, ObjectInfo
from comfy_workflows.validation import (
    DEFAULT_ALLOWED_CLASSES,
    RawWorkflowPolicy,
    types_compatible,
    validate_graph,
    validate_raw_workflow,
)
from tests.unit.comfy_workflows.recorded import RECORDED_TXT2IMG

Graph = dict[str, Any]


def recorded() -> Graph:
    """The txt2img graph a real ComfyUI ran, as a fresh copy."""
    return copy.deepcopy(RECORDED_TXT2IMG)


def only(issues: list[ValidationIssue]) -> ValidationIssue:
    assert len(issues) == 1, issues
    return issues[0]


def test_the_graph_comfyui_ran_is_valid(raw_object_info: dict[str, Any]) -> None:
    assert validate_graph(recorded(), raw_object_info) == []


# Each case mirrors one recorded /prompt rejection (prompt_errors.json): same change, same error type.
def _drop_steps(g: Graph) -> None:
    del g["5"]["inputs"]["steps"]


def _unknown_class(g: Graph) -> None:
    g["9"] = {"class_type": "NoSuchNode", "inputs": {}}


def _bad_checkpoint(g: Graph) -> None:
    g["1"]["inputs"]["ckpt_name"] = "nonexistent.safetensors"


def _steps_zero(g: Graph) -> None:
    g["5"]["inputs"]["steps"] = 0


def _bad_sampler(g: Graph) -> None:
    g["5"]["inputs"]["sampler_name"] = "no_such_sampler"


def _latent_as_positive(g: Graph) -> None:
    g["5"]["inputs"]["positive"] = ["4", 0]


def _link_to_missing(g: Graph) -> None:
    g["6"]["inputs"]["samples"] = ["42", 0]


def _no_output(g: Graph) -> None:
    del g["7"]


def _string_for_int(g: Graph) -> None:
    g["5"]["inputs"]["steps"] = "four"


@pytest.mark.parametrize(
    ("mutate", "comfy_type", "node_id", "input_name", "words"),
    [
        (_drop_steps, "required_input_missing", "5", "steps", "required input 'steps' of KSampler is missing"),
        (_unknown_class, "missing_node_type", "9", None, "'NoSuchNode' is not installed"),
        (_bad_checkpoint, "value_not_in_list", "1", "ckpt_name",
         "checkpoint 'nonexistent.safetensors' is not offered by the backend; "
         "offered: ['sd15_slim_random.safetensors']"),
        (_steps_zero, "value_smaller_than_min", "5", "steps", "is 0, below the minimum 1"),
        (_bad_sampler, "value_not_in_list", "5", "sampler_name", "(44 in all)"),
        (_latent_as_positive, "return_type_mismatch", "5", "positive", "takes CONDITIONING but node 4"),
        (_link_to_missing, "link_to_missing_node", "6", "samples", "links to node 42, which does not exist"),
        (_no_output, "prompt_no_outputs", None, None, "no output node"),
        (_string_for_int, "invalid_input_type", "5", "steps", "expected a whole number, got 'four'"),
    ],
)  # fmt: skip
def test_recorded_comfyui_rejections_are_caught(
    raw_object_info: dict[str, Any], mutate: Any, comfy_type: str, node_id: str | None,
    input_name: str | None, words: str,
) -> None:  # fmt: skip
    graph = recorded()
    mutate(graph)
    issue = only(validate_graph(graph, raw_object_info))
    assert issue.kind.value == comfy_type
    assert (issue.node_id, issue.input_name) == (node_id, input_name)
    assert words in issue.message


@pytest.mark.parametrize(
    ("node_id", "input_name", "value", "kind"),
    [
        ("5", "steps", 10_001, IssueKind.ABOVE_MAX),
        ("5", "denoise", 1.5, IssueKind.ABOVE_MAX),
        ("5", "cfg", -1, IssueKind.BELOW_MIN),
        ("5", "seed", True, IssueKind.WRONG_TYPE),
        ("5", "steps", 4.0, IssueKind.WRONG_TYPE),
        ("5", "cfg", float("nan"), IssueKind.WRONG_TYPE),
        ("5", "cfg", "7", IssueKind.WRONG_TYPE),
        ("2", "text", 3, IssueKind.WRONG_TYPE),
        ("5", "model", "a model", IssueKind.WRONG_TYPE),
        ("5", "model", ["1", 3], IssueKind.LINK_TO_MISSING_OUTPUT),
        ("5", "model", ["1", 0, 1], IssueKind.BAD_LINK),
        ("5", "scheduler", ["normal"], IssueKind.BAD_LINK),
    ],
)
def test_value_and_link_checks(
    raw_object_info: dict[str, Any], node_id: str, input_name: str, value: Any, kind: IssueKind
) -> None:
    graph = recorded()
    graph[node_id]["inputs"][input_name] = value
    issue = only(validate_graph(graph, raw_object_info))
    assert (issue.kind, issue.node_id, issue.input_name, issue.class_type) == (
        kind,
        node_id,
        input_name,
        graph[node_id]["class_type"],
    )


def test_field_map_names_the_request_field(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["5"]["inputs"]["steps"] = 0
    issue = only(validate_graph(graph, raw_object_info, {("5", "steps"): "steps", ("1", "ckpt_name"): "base_model"}))
    assert issue.field == "steps"
    assert issue.to_dict()["kind"] == "value_smaller_than_min"


def test_both_combo_encodings_are_checked(raw_object_info: dict[str, Any]) -> None:
    # LatentConcat.dim uses ["COMBO", {"options": [...]}]; KSampler.scheduler uses [[...], {...}].
    assert raw_object_info["LatentConcat"]["input"]["required"]["dim"][0] == "COMBO"
    graph = recorded()
    graph["8"] = {"class_type": "LatentConcat", "inputs": {"samples1": ["4", 0], "samples2": ["4", 0], "dim": "x"}}
    assert validate_graph(graph, raw_object_info) == []
    graph["8"]["inputs"]["dim"] = "z"
    issue = only(validate_graph(graph, raw_object_info))
    assert issue.kind is IssueKind.VALUE_NOT_IN_LIST
    assert "'x', '-x'" in issue.message


def test_uploaded_file_combos_are_not_checked_against_the_stale_list(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["8"] = {"class_type": "LoadImage", "inputs": {"image": "just_uploaded.png"}}
    assert raw_object_info["LoadImage"]["input"]["required"]["image"][0] == []
    assert validate_graph(graph, raw_object_info) == []
    graph["8"]["inputs"]["image"] = ""
    assert only(validate_graph(graph, raw_object_info)).kind is IssueKind.WRONG_TYPE


def _with_listed_images(raw_object_info: dict[str, Any], *names: str) -> dict[str, Any]:
    info = copy.deepcopy(raw_object_info)
    info["LoadImage"]["input"]["required"]["image"][0] = list(names)
    return info


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("../../../../etc/passwd", IssueKind.FILE_PATH),
        ("/etc/passwd", IssueKind.FILE_PATH),
        ("sub/listed.png", IssueKind.FILE_PATH),
        ("..\\..\\boot.ini", IssueKind.FILE_PATH),
        ("C:secret.png", IssueKind.FILE_PATH),
        ("~root", IssueKind.FILE_PATH),
        ("..", IssueKind.FILE_PATH),
        ("a..b.png", IssueKind.FILE_PATH),
        ("someone_elses.png", IssueKind.VALUE_NOT_IN_LIST),
        ("listed.png [output]", IssueKind.VALUE_NOT_IN_LIST),
    ],
)
def test_a_raw_workflow_loads_only_files_the_backend_lists_or_the_request_uploads(
    raw_object_info: dict[str, Any], value: str, kind: IssueKind
) -> None:
    """Issue 8, item 3: a loader's file input never reaches ComfyUI as a path or a file not offered."""
    info = _with_listed_images(raw_object_info, "listed.png")
    graph = recorded()
    graph["8"] = {"class_type": "LoadImage", "inputs": {"image": value}}
    issue = only(validate_raw_workflow(graph, info, RawWorkflowPolicy(), uploaded={"atelier_job_8.png"}))
    assert (issue.kind, issue.node_id, issue.input_name) == (kind, "8", "image")
    for fine in ("listed.png", "atelier_job_8.png"):
        graph["8"]["inputs"]["image"] = fine
        assert validate_raw_workflow(graph, info, RawWorkflowPolicy(), uploaded={"atelier_job_8.png"}) == []


def test_optional_inputs_may_be_left_out_but_are_checked_when_given(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["8"] = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "a", "clip_name2": "b", "type": "flux"}}
    kinds = {(i.input_name, i.kind) for i in validate_graph(graph, raw_object_info)}
    assert kinds == {("clip_name1", IssueKind.VALUE_NOT_IN_LIST), ("clip_name2", IssueKind.VALUE_NOT_IN_LIST)}
    graph["8"]["inputs"]["device"] = "tpu"
    assert ("device", IssueKind.VALUE_NOT_IN_LIST) in {
        (i.input_name, i.kind) for i in validate_graph(graph, raw_object_info)
    }


def test_undeclared_inputs_are_ignored_like_comfyui_does(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["5"]["inputs"]["not_an_input"] = object()
    assert validate_graph(graph, raw_object_info) == []


def test_cycles_are_reported(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["8"] = {
        "class_type": "LatentUpscaleBy",
        "inputs": {"samples": ["9", 0], "upscale_method": "area", "scale_by": 1.5},
    }
    graph["9"] = {
        "class_type": "LatentUpscaleBy",
        "inputs": {"samples": ["8", 0], "upscale_method": "area", "scale_by": 1.5},
    }
    issue = only(validate_graph(graph, raw_object_info))
    assert issue.kind is IssueKind.CYCLE
    assert issue.node_id in {"8", "9"}


@pytest.mark.parametrize(
    "graph", [{}, [], {"1": "CheckpointLoaderSimple"}, {"1": {"class_type": "KSampler", "inputs": 3}}]
)
def test_malformed_graphs_are_reported(raw_object_info: dict[str, Any], graph: Any) -> None:
    kinds = {i.kind for i in validate_graph(graph, raw_object_info)}
    assert IssueKind.MALFORMED in kinds


def test_an_object_info_wrapper_and_a_raw_mapping_give_the_same_answer(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["5"]["inputs"]["steps"] = 0
    assert validate_graph(graph, ObjectInfo(raw_object_info)) == validate_graph(graph, raw_object_info)


@pytest.mark.parametrize(
    ("received", "expected", "ok"),
    [
        ("LATENT", "LATENT", True),
        ("LATENT", "CONDITIONING", False),
        ("*", "MODEL", True),
        ("STRING", "BOUNDING_BOX,ARRAY,STRING", True),
        ("IMAGE", "BOUNDING_BOX,ARRAY,STRING", False),
        ("IMAGE", "COMFY_MATCHTYPE_V3", True),
    ],
)
def test_type_compatibility(received: str, expected: str, ok: bool) -> None:
    assert types_compatible(received, expected) is ok


def test_raw_workflow_allowlist_rejects_other_classes(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    assert validate_raw_workflow(graph, raw_object_info, RawWorkflowPolicy()) == []
    graph["8"] = {"class_type": "SaveLatent", "inputs": {"samples": ["5", 0], "filename_prefix": "x"}}
    issue = only(validate_raw_workflow(graph, raw_object_info, RawWorkflowPolicy()))
    assert (issue.kind, issue.node_id, issue.class_type) == (IssueKind.CLASS_NOT_ALLOWED, "8", "SaveLatent")
    allowing = RawWorkflowPolicy(allowed_classes=DEFAULT_ALLOWED_CLASSES | {"SaveLatent"})
    assert validate_raw_workflow(graph, raw_object_info, allowing) == []


def test_default_allowlist_names_real_classes(raw_object_info: dict[str, Any]) -> None:
    assert set(raw_object_info) >= DEFAULT_ALLOWED_CLASSES


@pytest.mark.parametrize(
    ("text", "hosts", "bad"),
    [
        ("a cat, see https://evil.example/x.png", (), ["'evil.example'"]),
        ("http://cdn.models.example/a", ("models.example",), []),
        ("http://models.example.evil/a", ("models.example",), ["'models.example.evil'"]),
        ("ftp://10.0.0.1/x and https://ok.example/y", ("ok.example",), ["'ftp://10.0.0.1/x'"]),
        ("file:///etc/passwd and plain words: 3:4", (), ["'file:///etc/passwd'"]),
        # issue 8, item 3: scheme-less, backslashes, IP literals in other spellings
        ("//169.254.169.254/latest/meta-data", (), ["169.254.169.254"]),
        ("http:\\\\169.254.169.254\\x", (), ["'169.254.169.254'"]),
        ("see (http://0xa9.0xfe.0xa9.0xfe/x)", ("169.254.169.254",), []),
        ("http://2852039166/x", (), ["'169.254.169.254'"]),
        ("http://[::ffff:a9fe:a9fe]/x", (), ["'169.254.169.254'"]),
        ("HTTPS://IMAGES.example.ORG./a.png", ("images.example.org",), []),
        ("a ratio of 3:4, a path C:\\models and a time 12:30", (), []),
    ],
)
def test_urls_in_strings_must_be_http_to_an_allowed_host(
    raw_object_info: dict[str, Any], text: str, hosts: tuple[str, ...], bad: list[str]
) -> None:
    graph = recorded()
    graph["2"]["inputs"]["text"] = text
    policy = RawWorkflowPolicy(allowed_url_hosts=frozenset(hosts))
    issues = validate_raw_workflow(graph, raw_object_info, policy)
    assert [i.kind for i in issues] == [IssueKind.REMOTE_URL] * len(bad)
    for issue, shown in zip(issues, bad, strict=True):
        assert (issue.node_id, issue.input_name) == ("2", "text")
        assert shown in issue.message


def test_urls_hidden_in_lists_and_extra_inputs_are_found(raw_object_info: dict[str, Any]) -> None:
    graph = recorded()
    graph["2"]["inputs"]["extra"] = {"nested": ["https://evil.example/x"]}
    issue = only(validate_raw_workflow(graph, raw_object_info, RawWorkflowPolicy()))
    assert issue.input_name == "extra"


def test_a_combo_offers_exactly_its_values_whatever_the_value() -> None:
    names = InputDef("lora_name", "COMBO", {}, True, tuple(f"style-{n}.safetensors" for n in range(5000)))
    assert names.offers("style-4999.safetensors")
    assert not names.offers("style-5000.safetensors")
    assert not names.offers(["style-1.safetensors"])  # unhashable (a hostile graph's value): no error, not offered
    assert not names.offers({"a": 1})
    mixed = InputDef("odd", "COMBO", {}, True, (["a"], "b"))  # an option that cannot be hashed
    assert mixed.offers("b")
    assert mixed.offers(["a"])
    assert not mixed.offers("c")
    assert not InputDef("none", "COMBO", {}, True, None).offers("x")
