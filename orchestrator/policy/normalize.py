# SPDX-License-Identifier: Apache-2.0
"""Text normalisation for the content policy: what a hostile writer changes, folded back before matching.

One pass each, all of them C-speed string operations on the whole text:

1. Unicode NFKC (fullwidth ``ｎｕｄｅ``, mathematical letters, ligatures become plain letters), then
   ``casefold`` and NFD, so that accents are separate combining marks.
2. One ``str.translate`` table: combining marks, zero-width and other format or control characters (and
   private-use or unassigned code points) are dropped; other spaces become a plain space; a letter of another
   script that looks like a Latin letter becomes that letter (Cyrillic ``с``, ``һ``, Greek ``ο``).
3. Leetspeak: digits and the symbols ``@ $ € £ +`` next to a letter, and ``! |`` before one, become letters
   (``s3x`` -> ``sex``, ``ch!ld``). ``1``, ``!``, ``|`` and ``£`` stand for ``i`` or ``l``: they become
   :data:`I_OR_L`, which the matcher reads both ways. A number standing alone stays a number (ages are read
   from it); ``nude!`` keeps its exclamation mark.
4. :func:`squeeze` collapses repeated letters (``nuuuude``); the matcher uses it only for words that had a
   repeat, so ``ten`` never becomes ``teen``.

Letters separated by spaces or punctuation are rejoined by the matcher (:mod:`orchestrator.policy.matching`),
which knows where the words are.

``l`` and ``i`` stay apart; leetspeak's ``1`` is read as either (see step 3).

The homoglyph library is ``confusable-homoglyphs`` (Unicode's confusables.txt as data), not ``unidecode``.
``unidecode`` transliterates by sound, not by look: Cyrillic ``р`` -> ``r``, ``с`` -> ``s``, ``х`` -> ``kh``,
``у`` -> ``u``, ``н`` -> ``n``, so ``сhild`` or ``рorn`` written with Cyrillic letters stay unrecognised.
Measured on the hostile corpus's look-alike class (tests/data/policy/hostile.tsv, class ``homoglyph``, 38
texts in six languages): with the table built here from confusable-homoglyphs 38 of 38 are caught; with
unidecode 1.4.0 transliterating the same characters instead, 10 of 38. Look-ups cost the same (one translate
table either way, filled once per process).

The translate table fills itself: a character's replacement is worked out the first time it is seen and kept
(building it for all 1.1 million code points up front takes a second).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from confusable_homoglyphs.confusables import confusables_data

I_OR_L = "ı"  # dotless i: what leetspeak's 1 ! | £ become (a real dotless i is folded to i before)
_LEET = {
    "0": "o", "1": I_OR_L, "2": "z", "3": "e", "4": "a", "5": "s", "6": "b", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "€": "e", "£": I_OR_L, "+": "t", "!": I_OR_L, "|": I_OR_L,
}  # fmt: skip
_LEET_RUN = re.compile(r"[0-9@$€£+!|]+")
_ENDS_RUN_AFTER_LETTER = frozenset("!|")
_SQUEEZE_RE = re.compile(r"([^\W\d_])\1+")
_DROPPED = frozenset({"Mn", "Me", "Cf", "Cc", "Co", "Cn", "Cs"})
_SPACES = frozenset({"Zs", "Zl", "Zp"})
_WHITESPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85")


@functools.cache
def _look_alikes() -> dict[str, str]:
    """Non-ASCII character -> the ASCII letter it looks like. Look-alikes of digits (Cyrillic ``б`` of 6) are
    left alone: folded to digits, leetspeak would turn Russian ``бабу`` into ``baby``."""
    found: dict[str, str] = {}

    def ascii_twin(char: str) -> str | None:
        twins = [h["c"] for h in confusables_data.get(char, ()) if len(h["c"]) == 1 and h["c"].isascii()]
        return next((t for t in twins if t.isalpha()), None)

    for char in confusables_data:
        if len(char) != 1 or char.isascii():
            continue
        twin = ascii_twin(char)
        if twin is None and len(char.upper()) == 1 and char.upper() != char:
            twin = ascii_twin(char.upper())  # Cyrillic н looks like nothing, but Н looks like H
        if twin is not None:
            found[char] = twin.lower()
    return found


def _fold_char(char: str) -> str | None:
    if char in _WHITESPACE_CONTROLS:
        return " "
    category = unicodedata.category(char)
    if category in _DROPPED:
        return None
    if category in _SPACES:
        return " "
    if not char.isascii():
        return _look_alikes().get(char, char)
    return char


class _FoldTable(dict[int, str | None]):
    """``str.translate`` table that works out a code point's replacement on first sight and keeps it."""

    def __missing__(self, code: int) -> str | None:
        value = _fold_char(chr(code))
        self[code] = value
        return value


_TABLE = _FoldTable()


def compatible_lower(text: str) -> str:
    """Step 1 without the accents split off: NFKC, then casefold (what a language's own letters are seen in)."""
    return unicodedata.normalize("NFKC", text).casefold()


def fold_lowered(lowered: str) -> str:
    """Step 2 on the output of :func:`compatible_lower`: accents, invisible and look-alike characters folded."""
    return unicodedata.normalize("NFD", lowered).translate(_TABLE)


def fold_characters(text: str) -> str:
    """Steps 1 and 2: NFKC, casefold, accents, invisible characters and look-alike letters folded."""
    return fold_lowered(compatible_lower(text))


def _unleet(match: re.Match[str]) -> str:
    """A run of digits and symbols becomes letters when a letter follows it; after a letter, its part up to
    the first ``!`` or ``|`` does (``nude!`` keeps its ``!``); standing alone it stays as it is."""
    text, start, end = match.string, match.start(), match.end()
    run = match.group()
    if end < len(text) and text[end].isalpha():
        return "".join(_LEET[c] for c in run)
    if start > 0 and text[start - 1].isalpha():
        cut = next((i for i, c in enumerate(run) if c in _ENDS_RUN_AFTER_LETTER), len(run))
        return "".join(_LEET[c] for c in run[:cut]) + run[cut:]
    return run


def fold_leet(text: str) -> str:
    """Step 3 on text already through :func:`fold_characters`."""
    return _LEET_RUN.sub(_unleet, text)


def _first_group(match: re.Match[str]) -> str:
    return match.group(1)


def squeeze(text: str) -> str:
    """Repeated letters collapsed to one (``nuuude`` -> ``nude``); digits and spaces are left alone."""
    return _SQUEEZE_RE.sub(_first_group, text)


def fold(text: str) -> str:
    """The whole folding (steps 1-3), as the word lists are folded too."""
    return fold_leet(fold_characters(text))
