"""check_text on the corpora: benign texts pass in every mode, adult texts follow the mode, hostile texts are
refused by the minors rule whatever the settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.policy import Context, PolicyMode, Rule, check_text
from orchestrator.policy.rules import TextField, judge_fields
from orchestrator.settings import Settings
from tests.unit.policy.corpus import OBFUSCATIONS, generate, hostile, lines

MODES = [
    (PolicyMode.STRICT, False),
    (PolicyMode.STRICT, True),
    (PolicyMode.PERMISSIVE, False),
    (PolicyMode.PERMISSIVE, True),
]
HOSTILE = hostile()
REQUIRED_CLASSES = [name for name in OBFUSCATIONS if name != "joined"]


def test_the_hostile_corpus_file_is_current() -> None:
    assert generate() == HOSTILE, "run python -m tests.unit.policy.corpus"
    assert {h.language for h in HOSTILE} == {"en", "pl", "ru", "de", "es", "fr"}
    assert {h.obfuscation for h in HOSTILE} == set(OBFUSCATIONS)


@pytest.mark.parametrize("text", lines("benign.txt"))
@pytest.mark.parametrize(("mode", "adult"), MODES)
def test_benign_texts_are_accepted(text: str, mode: PolicyMode, adult: bool) -> None:
    decision = check_text(text, Context.PROMPT, mode=mode, adult=adult)
    assert decision.allowed, (decision.rule, decision.findings.labels)


@pytest.mark.parametrize("text", lines("adult.txt"))
def test_adult_texts_follow_the_mode_and_never_count_as_minors(text: str) -> None:
    assert check_text(text, Context.PROMPT).rule is Rule.NSFW_TEXT
    assert check_text(text, Context.PROMPT, mode=PolicyMode.PERMISSIVE, adult=False).rule is Rule.NSFW_TEXT
    assert check_text(text, Context.PROMPT, mode=PolicyMode.PERMISSIVE, adult=True).allowed


@pytest.mark.parametrize(
    "hostile_text",
    [h for h in HOSTILE if h.obfuscation in REQUIRED_CLASSES],
    ids=lambda h: f"{h.language}-{h.obfuscation}-{h.base}",
)
@pytest.mark.parametrize(("mode", "adult"), MODES)
def test_hostile_texts_are_refused_by_the_minors_rule_in_every_mode(hostile_text, mode, adult) -> None:  # type: ignore[no-untyped-def]
    decision = check_text(hostile_text.text, Context.PROMPT, mode=mode, adult=adult)
    assert decision.rule is Rule.MINORS_SEXUAL, (hostile_text.text, decision.findings.labels)
    assert "always" in decision.reason


def test_words_run_together_are_mostly_caught() -> None:
    joined = [h for h in HOSTILE if h.obfuscation == "joined"]
    caught = [h for h in joined if check_text(h.text, Context.PROMPT).rule is Rule.MINORS_SEXUAL]
    # known misses: a two-letter ambiguous word (French "nu") and a word not in any list ("Strand")
    assert {h.text for h in joined} - {h.text for h in caught} <= {"enfantnu", "nackteKinderamStrand"}


def test_no_setting_turns_the_policy_or_the_minors_rule_off() -> None:
    for value in ("off", "none", "disabled", ""):
        with pytest.raises(ValidationError):
            Settings(content_policy=value)
    assert set(PolicyMode) == {PolicyMode.STRICT, PolicyMode.PERMISSIVE}
    for mode, adult in MODES:
        assert check_text("nude child", Context.SUBJECT_NAME, mode=mode, adult=adult).rule is Rule.MINORS_SEXUAL


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("12yo nude", Rule.MINORS_SEXUAL),
        ("sixteen-year-old, topless", Rule.MINORS_SEXUAL),
        ("nude girls under 18", Rule.MINORS_SEXUAL),
        ("eine 12-jährige nackt", Rule.MINORS_SEXUAL),
        ("голая 12 лет", Rule.MINORS_SEXUAL),
        ("nude photo from 12 years ago", Rule.NSFW_TEXT),
        ("nude woman, age 30", Rule.NSFW_TEXT),
        ("nude model, shoot done in under 5 minutes", Rule.NSFW_TEXT),
        ("ten nude women", Rule.NSFW_TEXT),
    ],
)
def test_ages_written_with_numbers(text: str, rule: Rule) -> None:
    assert check_text(text, Context.PROMPT).rule is rule


def test_texts_of_one_request_are_judged_together() -> None:
    fields = [
        TextField("prompt", "a child on a beach", Context.PROMPT),
        TextField("inputs.7.text", "nude", Context.WORKFLOW_INPUT),
    ]
    refusal = judge_fields(fields, mode=PolicyMode.PERMISSIVE, adult=True)
    assert refusal is not None
    assert refusal.rule is Rule.MINORS_SEXUAL
    assert [f.field for f in refusal.fields] == ["prompt", "inputs.7.text"]
    alone = judge_fields(fields[:1], mode=PolicyMode.STRICT, adult=False)
    assert alone is None


def test_nsfw_refusal_names_only_the_sexual_field() -> None:
    fields = [
        TextField("prompt", "a lighthouse", Context.PROMPT),
        TextField("caption", "nude woman", Context.PHOTO_CAPTION),
    ]
    refusal = judge_fields(fields, mode=PolicyMode.STRICT, adult=False)
    assert refusal is not None
    assert refusal.rule is Rule.NSFW_TEXT
    assert [f.field for f in refusal.fields] == ["caption"]
