# SPDX-License-Identifier: Apache-2.0
"""The two text rules and :func:`check_text`.

- ``minors_sexual``: a text that pairs a minor (a word for a child, an age under 18) with sexual, nudity or
  suggestive content, or that uses a word meaning both, is refused **always** — no mode, flag or setting
  reaches this rule.
- ``nsfw_text``: sexual or nudity content. ``strict`` (the default) refuses it; ``permissive`` allows it to
  callers whose API key carries the adult-content flag and refuses it to everyone else. There is no mode
  that turns the policy off.

Pure: no I/O; the word lists are loaded once per process (:func:`orchestrator.policy.lexicon.default_lexicon`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.policy.lexicon import Lexicon
from orchestrator.policy.matching import NOTHING, Findings, find_terms


class Rule(StrEnum):
    """Rule ids, as refusals, audit rows and metrics name them."""

    MINORS_SEXUAL = "minors_sexual"
    NSFW_TEXT = "nsfw_text"
    NSFW_IMAGE = "nsfw_image"


class PolicyMode(StrEnum):
    """``ATELIER_CONTENT_POLICY``: what the NSFW rules do (the minors rule is the same in both)."""

    STRICT = "strict"
    PERMISSIVE = "permissive"


class Context(StrEnum):
    """Where a text or image was met."""

    PROMPT = "prompt"
    WORKFLOW_INPUT = "workflow_input"
    TEMPLATE_FIELD = "template_field"
    TEMPLATE_REGISTRATION = "template_registration"
    SAMPLE_PROMPT = "sample_prompt"
    CAPTION_TEMPLATE = "caption_template"
    PHOTO_CAPTION = "photo_caption"
    TRIGGER_WORD = "trigger_word"
    SUBJECT_NAME = "subject_name"
    CLASS_WORD = "class_word"
    LORA_NAME = "lora_name"
    GENERATED_IMAGE = "generated_image"
    TRAINING_PHOTO = "training_photo"


MINORS_REASON = "pairs a minor with sexual or nudity content; this is refused always, whatever the service's settings"
STRICT_REASON = "sexual or nudity content is refused by this service's content policy (strict)"
ADULT_FLAG_REASON = "sexual or nudity content needs an API key with the adult-content flag"


@dataclass(frozen=True)
class TextDecision:
    """Allowed (``rule`` None), or refused by ``rule`` for ``reason``; ``findings`` say what was seen."""

    context: Context
    findings: Findings
    rule: Rule | None = None
    reason: str = ""

    @property
    def allowed(self) -> bool:
        """Whether the text may go ahead."""
        return self.rule is None


def decide(findings: Findings, context: Context, *, mode: PolicyMode, adult: bool) -> TextDecision:
    """The decision for what was found. The minors rule comes first and ignores ``mode`` and ``adult``."""
    if findings.sexualises_minors:
        return TextDecision(context, findings, Rule.MINORS_SEXUAL, MINORS_REASON)
    if findings.sexual_content:
        if mode is PolicyMode.STRICT:
            return TextDecision(context, findings, Rule.NSFW_TEXT, STRICT_REASON)
        if not adult:
            return TextDecision(context, findings, Rule.NSFW_TEXT, ADULT_FLAG_REASON)
    return TextDecision(context, findings)


def check_text(
    text: str,
    context: Context,
    *,
    mode: PolicyMode = PolicyMode.STRICT,
    adult: bool = False,
    lexicon: Lexicon | None = None,
) -> TextDecision:
    """Allowed, or refused with a rule id and a human reason (text normalised first; see ``matching``)."""
    findings = find_terms(text, lexicon) if text else NOTHING
    return decide(findings, context, mode=mode, adult=adult)


@dataclass(frozen=True)
class TextField:
    """One text of a request: the request field it came from (``prompt``, ``sample_prompts[0].prompt``)."""

    field: str
    text: str
    context: Context


@dataclass(frozen=True)
class Refusal:
    """Why a request's texts are refused: the rule and, per field involved, the reason."""

    rule: Rule
    fields: tuple[TextField, ...]
    reasons: tuple[str, ...]
    findings: Findings

    @property
    def context(self) -> Context:
        """The context of the first field involved."""
        return self.fields[0].context


JOINT_MINORS_REASON = (
    "together with the request's other texts this pairs a minor with sexual or nudity content; this is refused "
    "always, whatever the service's settings"
)


def judge_fields(
    fields: list[TextField], *, mode: PolicyMode, adult: bool, lexicon: Lexicon | None = None
) -> Refusal | None:
    """The refusal of a request whose texts are ``fields``, or None when every text may go ahead.

    Each text is checked alone; then all of them together, because a job renders them together: a minor in
    the prompt and nudity in a second text node of the same graph are refused by the minors rule too.
    """
    findings = [find_terms(f.text, lexicon) if f.text else NOTHING for f in fields]
    decisions = [decide(found, f.context, mode=mode, adult=adult) for f, found in zip(fields, findings, strict=True)]
    for rule in (Rule.MINORS_SEXUAL, Rule.NSFW_TEXT):
        refused = [(f, d) for f, d in zip(fields, decisions, strict=True) if d.rule is rule]
        if refused:
            joint = NOTHING
            for _, decision in refused:
                joint = joint | decision.findings
            return Refusal(rule, tuple(f for f, _ in refused), tuple(d.reason for _, d in refused), joint)
        if rule is Rule.MINORS_SEXUAL:
            together = NOTHING
            for found in findings:
                together = together | found
            if together.sexualises_minors:
                involved = tuple(f for f, found in zip(fields, findings, strict=True) if found)
                return Refusal(rule, involved, (JOINT_MINORS_REASON,) * len(involved), together)
    return None
