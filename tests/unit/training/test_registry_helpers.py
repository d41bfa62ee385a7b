"""Trigger-word insertion (word-boundary aware, case-insensitive like CLIP's tokenizer)."""

from __future__ import annotations

import pytest

from orchestrator.loras.registry import has_word, insert_trigger_word


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("portrait of zxq, studio light", "portrait of zxq, studio light"),
        ("ZXQ on a beach", "ZXQ on a beach"),
        ("(zxq:1.2) smiling", "(zxq:1.2) smiling"),
        ("portrait of zxqman", "zxq, portrait of zxqman"),
        ("zxq-like statue", "zxq, zxq-like statue"),
        ("  a cat  ", "zxq, a cat"),
        ("", "zxq"),
    ],
)
def test_insert_trigger_word(prompt: str, expected: str) -> None:
    assert insert_trigger_word(prompt, "zxq") == expected


def test_no_trigger_word_leaves_the_prompt_alone() -> None:
    assert insert_trigger_word("a cat", None) == "a cat"
    assert insert_trigger_word("a cat", "") == "a cat"


def test_special_characters_in_the_word_are_literal() -> None:
    assert has_word("photo of a.b person", "a.b")
    assert not has_word("photo of axb person", "a.b")
