"""Normalisation steps, word-boundary matching and the texts of a ComfyUI graph."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.generation.content import FieldOf, graph_fields
from orchestrator.policy import Context, graph_texts
from orchestrator.policy.matching import REMEMBERED_MAX_CHARS, find_terms
from orchestrator.policy.normalize import I_OR_L, fold, squeeze


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("ｎｕｄｅ", "nude"),  # fullwidth (NFKC)
        ("n\u200bu\u200dd\ufeffe", "nude"),  # zero-width characters
        ("nüdé", "nude"),  # accents
        ("сhіld", "child"),  # Cyrillic look-alikes
        ("NuDe", "nude"),
        ("s3x", "sex"),
        ("ch1ld", f"ch{I_OR_L}ld"),  # 1 is read as i and as l by the matcher
        ("nude!", "nude!"),  # a trailing exclamation mark stays punctuation
        ("12 apples", "12 apples"),  # a number alone stays a number
        ("бабу", "бaбy"),  # Cyrillic б looks like a digit: left alone, so this does not become "baby"
    ],
)
def test_folding(written: str, folded: str) -> None:
    assert fold(written) == folded


def test_squeeze_collapses_repeated_letters_only() -> None:
    assert squeeze("nuuuude 1000") == "nude 1000"


@pytest.mark.parametrize(
    "text",
    [
        "kidney stones",
        "Sussex and Essex",
        "a therapist",
        "congenital",
        "skidoo",
        "public park",  # squeezed it would look like "pubic" if l and i were one letter
        "ten apples",  # not "teen"
        "a goose",  # not French "gosse" with its s doubled
        "he seeks",
        "rapping",
        "a b c d e",  # letters spelt out that spell nothing
    ],
)
def test_ordinary_words_are_not_list_words(text: str) -> None:
    assert not find_terms(text), find_terms(text).labels


def test_harmless_phrases_take_their_words_out() -> None:
    assert not find_terms("a nude color palette")
    assert find_terms("a nude woman and a nude color palette").sexual == ("en:nude",)


def _graph(negative_via: str = "direct") -> dict[str, Any]:
    graph: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "nude, blurry", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "4": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "positive": ["2", 0],
                "negative": ["3", 0],
                "latent_image": ["5", 0],
                "seed": 1,
                "steps": 4,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
            },
        },
        "6": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "ComfyUI"}},
    }
    if negative_via == "combine":  # the negative text also reaches the positive input
        graph["7"] = {
            "class_type": "ConditioningCombine",
            "inputs": {"conditioning_1": ["2", 0], "conditioning_2": ["3", 0]},
        }
        graph["4"]["inputs"]["positive"] = ["7", 0]
    if negative_via == "string":  # a string node feeding the negative encoder
        graph["8"] = {"class_type": "PrimitiveString", "inputs": {"value": "naked"}}
        graph["3"]["inputs"]["text"] = ["8", 0]
    return graph


def test_text_that_reaches_only_a_negative_input_is_not_checked() -> None:
    texts = {(t.node_id, t.input_name): t.text for t in graph_texts(_graph())}
    assert ("3", "text") not in texts
    assert texts[("2", "text")] == "a lighthouse"
    assert texts[("6", "filename_prefix")] == "ComfyUI"
    assert texts[("1", "ckpt_name")] == "sd15.safetensors"
    assert ("8", "value") not in {(t.node_id, t.input_name) for t in graph_texts(_graph("string"))}


def test_text_that_also_reaches_a_positive_input_is_checked() -> None:
    texts = {(t.node_id, t.input_name) for t in graph_texts(_graph("combine"))}
    assert ("3", "text") in texts


def test_data_urls_are_not_text() -> None:
    graph = {"9": {"class_type": "LoadImage", "inputs": {"image": "data:image/png;base64,AAAA"}}}
    assert graph_texts(graph) == []


def test_inputs_the_service_wrote_itself_are_not_the_callers_text() -> None:
    graph = _graph()
    graph["6"]["inputs"]["filename_prefix"] = "atelier/nude"
    field_of: FieldOf = lambda node, name: f"{node}.{name}"  # noqa: E731
    checked = {f.field for f in graph_fields(graph, Context.PROMPT, field_of, own=[("6", "filename_prefix")])}
    assert checked == {"1.ckpt_name", "2.text", "4.sampler_name", "4.scheduler"}
    assert "6.filename_prefix" in {f.field for f in graph_fields(graph, Context.PROMPT, field_of)}


def test_a_text_checked_again_is_not_read_again_unless_it_is_long() -> None:
    first = find_terms("a nude woman on a quiet beach")
    assert first.sexual == ("en:nude",)
    assert find_terms("a nude woman on a quiet beach") is first
    long = "a quiet beach " * (REMEMBERED_MAX_CHARS // 14) + "and a nude woman"
    assert find_terms(long).sexual == ("en:nude",)
    assert find_terms(long) is not find_terms(long)  # not kept: a few MB of long texts at most
