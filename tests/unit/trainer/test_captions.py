"""Captions: defaults per subject kind, user captions, templates."""

from __future__ import annotations

import pytest

from trainer.dataset import (
    Captioner,
    CaptionError,
    CaptionTemplate,
    SubjectKind,
    build_captions,
    check_trigger_word,
    class_word_for,
)


@pytest.mark.parametrize(
    ("kind", "word"),
    [
        (SubjectKind.PERSON, "person"),
        (SubjectKind.STYLE, "style"),
        (SubjectKind.PRODUCT, "product"),
        (SubjectKind.CHARACTER, "character"),
    ],
)
def test_default_caption_is_trigger_and_class_word(kind: SubjectKind, word: str) -> None:
    assert build_captions(["a"], trigger="zxq", kind=kind) == {"a": f"zxq {word}"}


def test_user_class_word_and_per_photo_captions() -> None:
    captions = build_captions(
        ["a", "b"],
        trigger="zxq",
        kind=SubjectKind.PERSON,
        class_word="woman",
        user_captions={"b": "  smiling,\n outdoors "},
    )
    assert captions == {"a": "zxq woman", "b": "zxq woman, smiling, outdoors"}


def test_template_with_and_without_caption() -> None:
    template = CaptionTemplate("photo of {trigger} {class}, {caption}")
    assert template.render(trigger="zxq", class_word="person", caption="at the beach") == (
        "photo of zxq person, at the beach"
    )
    assert template.render(trigger="zxq", class_word="person") == "photo of zxq person"
    assert CaptionTemplate("{caption}; {trigger} style").render(trigger="t1", class_word="style") == "t1 style"


@pytest.mark.parametrize("pattern", ["{trigger} {name}", "{class} only", "{trigger} {0}", "{trigger"])
def test_bad_templates(pattern: str) -> None:
    with pytest.raises(CaptionError):
        CaptionTemplate(pattern)


@pytest.mark.parametrize("word", ["ok_word", "sks", "a1-b2"])
def test_good_trigger_words(word: str) -> None:
    assert check_trigger_word(word) == word


@pytest.mark.parametrize("word", ["", "x", "two words", "émile", "-lead", "a" * 41])
def test_bad_trigger_words(word: str) -> None:
    with pytest.raises(CaptionError, match="trigger word"):
        check_trigger_word(word)


def test_captions_for_unknown_photos_are_refused() -> None:
    with pytest.raises(CaptionError, match="unknown photos"):
        build_captions(["a"], trigger="zxq", kind=SubjectKind.STYLE, user_captions={"zz": "x"})


def test_blank_class_word_falls_back_to_default() -> None:
    assert class_word_for(SubjectKind.PRODUCT, "   ") == "product"


def test_captioner_is_a_protocol() -> None:
    class Fixed:
        name = "fixed"

        def describe_batch(self, images: object) -> list[str]:
            return ["a red mug"]

    class OnePhotoAtATime:  # the interface before batches
        def describe(self, image: object) -> str:
            return "a red mug"

    assert isinstance(Fixed(), Captioner)
    assert not isinstance(OnePhotoAtATime(), Captioner)
    assert not isinstance(object(), Captioner)
