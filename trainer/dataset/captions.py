"""Training captions: trigger word + class word, per-photo user captions, written descriptions, templates.

Three ways to caption (:class:`CaptionMode`): ``trigger`` (trigger + class word, plus the user's caption where
one is given), ``auto`` (a :class:`Captioner` describes every photo the user did not caption) and ``manual``
(every photo must carry a user caption). In every mode a user caption wins and the template keeps the trigger
word first. :mod:`trainer.dataset.captioner` implements the protocol with a transformers captioning model.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from PIL import Image

from trainer.dataset.limits import SubjectKind

DEFAULT_CLASS_WORDS: Mapping[SubjectKind, str] = {
    SubjectKind.PERSON: "person",
    SubjectKind.STYLE: "style",
    SubjectKind.PRODUCT: "product",
    SubjectKind.CHARACTER: "character",
}

TEMPLATE_FIELDS = frozenset({"trigger", "class", "caption"})
_TRIGGER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{1,39}$")


class CaptionError(ValueError):
    """A caption template, trigger word or caption that cannot be used."""


class CaptionMode(StrEnum):
    """How a training's captions are written (see the module docstring)."""

    AUTO = "auto"
    TRIGGER = "trigger"
    MANUAL = "manual"


class CaptionSource(StrEnum):
    """Where the descriptive part of one photo's caption came from."""

    USER = "user"  # the photo's stored caption or the request's per-photo caption
    AUTO = "auto"  # written by the captioner
    NONE = "none"  # trigger and class word only


@runtime_checkable
class Captioner(Protocol):
    """Describes images in words (the part of a caption after the trigger and class words)."""

    @property
    def name(self) -> str:
        """Which model describes (kept in the dataset manifest as provenance)."""
        ...

    def describe_batch(self, images: Sequence[Image.Image]) -> list[str]:
        """One short description per image, in order; an empty string where there is nothing to add."""
        ...


def class_word_for(kind: SubjectKind, class_word: str | None = None) -> str:
    """The user's class word when given (e.g. "woman"), else the kind's default."""
    if class_word is not None and class_word.strip():
        return _one_line(class_word, "class word")
    return DEFAULT_CLASS_WORDS[kind]


def check_trigger_word(trigger: str) -> str:
    """Return the trigger word if it is usable: 2-40 letters, digits, ``_`` or ``-``, no spaces."""
    if not _TRIGGER_RE.match(trigger):
        raise CaptionError(
            f"trigger word {trigger!r} must be 2-40 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return trigger


@dataclass(frozen=True)
class CaptionTemplate:
    """A caption pattern with the fields ``{trigger}``, ``{class}`` and ``{caption}``.

    When a photo has no caption, the ``{caption}`` field and the separator before it are dropped, so
    ``"photo of {trigger} {class}, {caption}"`` gives ``"photo of sks person"``.
    """

    pattern: str = "{trigger} {class}, {caption}"

    def __post_init__(self) -> None:
        try:
            fields = [name for _, name, spec, conv in string.Formatter().parse(self.pattern) if name is not None]
        except ValueError as exc:
            raise CaptionError(f"caption template {self.pattern!r}: {exc}") from exc
        unknown = sorted(set(fields) - TEMPLATE_FIELDS)
        if unknown:
            raise CaptionError(f"caption template {self.pattern!r}: unknown fields {unknown}")
        if "trigger" not in fields:
            raise CaptionError(f"caption template {self.pattern!r} must contain {{trigger}}")

    def render(self, *, trigger: str, class_word: str, caption: str = "") -> str:
        """Fill the template; the result is one line with single spaces."""
        caption = _one_line(caption, "caption") if caption.strip() else ""
        pattern = self.pattern if caption else _drop_caption_field(self.pattern)
        text = pattern.format_map({"trigger": trigger, "class": class_word, "caption": caption})
        return " ".join(text.split()).strip(" ,;")


def _drop_caption_field(pattern: str) -> str:
    return re.sub(r"[\s,;:]*\{caption\}", "", pattern)


def _one_line(text: str, what: str) -> str:
    cleaned = " ".join(text.split())
    if len(cleaned) > 500:
        raise CaptionError(f"{what} is longer than 500 characters")
    return cleaned


def build_captions(
    photo_ids: list[str],
    *,
    trigger: str,
    kind: SubjectKind,
    class_word: str | None = None,
    user_captions: Mapping[str, str] | None = None,
    template: CaptionTemplate | None = None,
) -> dict[str, str]:
    """Caption every photo: the user's caption where given, rendered through the template."""
    check_trigger_word(trigger)
    word = class_word_for(kind, class_word)
    tpl = template or CaptionTemplate()
    user_captions = user_captions or {}
    unknown = sorted(set(user_captions) - set(photo_ids))
    if unknown:
        raise CaptionError(f"captions given for unknown photos: {unknown}")
    return {pid: tpl.render(trigger=trigger, class_word=word, caption=user_captions.get(pid, "")) for pid in photo_ids}
