# SPDX-License-Identifier: Apache-2.0
"""Finding the list words in a text, word by word, after normalisation.

Matching is by whole words (the pieces between spaces and punctuation), never by substring: ``kidney``,
``Sussex``, ``therapist`` and ``congenital`` contain list words but are not list words. Obfuscation is undone
where it shows:

- a word broken by punctuation (``n.u.d.e``, ``nu-de``) is also tried whole;
- three or more single letters in a row (``n u d e``, ``c h i l d``) are also tried joined, and since the
  spaces between words are lost with them, list words are looked for anywhere inside;
- a word that had repeated letters (``nuuude``) is also tried with them collapsed — only then, so that
  ``ten`` is not ``teen``;
- two list words run together (``childporn``, ``kinderporno``) count as both.

Phrases (``little girl``) are matched on the word sequence; a harmless phrase (``nude color``) takes its words
out of the count. A word that belongs to a language only ambiguously (``kind``) counts when the text shows that
language (see :mod:`orchestrator.policy.lexicon`). Ages under 18 written with numbers count as minor words
(``age:12``).

Speed: one dictionary look-up per word in the common case; the obfuscated forms are found by regular
expressions over the whole text, so a text without them costs nothing more (``benchmarks/bench_policy.py``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from itertools import groupby

from orchestrator.policy.lexicon import PIECE, Category, Lexicon, LookupTable, Term, default_lexicon
from orchestrator.policy.normalize import I_OR_L, compatible_lower, fold_leet, fold_lowered, squeeze

# a word with punctuation inside it (n.u.d.e, nu-de, ch_ild), or three or more single letters or digits in a
# row separated by anything but letters and digits (n u d e)
_OBFUSCATED = re.compile(r"(?<![^\W_])(?:[^\W_]++(?:(?:[^\w\s]|_)++[^\W_]++)+|[^\W_](?:[\W_]+[^\W_](?![^\W_])){2,})")
_DIGIT = re.compile(r"\d")
_GAP = re.compile(r"[\W_]+")
_PASS = 1_000_000  # word indexes of each pass over a text start here times the pass's number


@dataclass(frozen=True)
class Findings:
    """The list words found in one or more texts, by category (labels such as ``en:nude``, ``age:12``)."""

    minor: tuple[str, ...] = ()
    sexual: tuple[str, ...] = ()
    suggestive: tuple[str, ...] = ()
    minor_sexual: tuple[str, ...] = ()

    def __or__(self, other: Findings) -> Findings:
        return Findings(
            _union(self.minor, other.minor),
            _union(self.sexual, other.sexual),
            _union(self.suggestive, other.suggestive),
            _union(self.minor_sexual, other.minor_sexual),
        )

    @property
    def sexualises_minors(self) -> bool:
        """A minor paired with sexual, nudity or suggestive content, or a term that means both."""
        return bool(self.minor_sexual) or (bool(self.minor) and bool(self.sexual or self.suggestive))

    @property
    def sexual_content(self) -> bool:
        """Sexual or nudity content (what the NSFW rule is about)."""
        return bool(self.sexual or self.minor_sexual)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label, minors first."""
        return self.minor_sexual + self.minor + self.sexual + self.suggestive

    def __bool__(self) -> bool:
        return bool(self.minor or self.sexual or self.suggestive or self.minor_sexual)


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a) if b else a


NOTHING = Findings()


class _Scan:
    """Collects the terms of one text; ``hits`` keep the word index so that harmless phrases can drop them."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self.hits: list[tuple[int, tuple[Term, ...]]] = []
        self.languages: set[str] = set()
        self.neutral: set[int] = set()
        self.numbers = False
        self.stretched_words = False
        self.fresh: set[int] | None = None

    def pieces(self, pieces: list[str], squeezed: list[str], offset: int = 0, fresh: set[int] | None = None) -> None:
        """Each word as a whole word, by a stem, or as list words run together; phrases starting at it; with
        its repeated letters collapsed (``squeezed``, the same words that way) when it had some. ``offset``
        keeps word indexes of passes apart; with ``fresh``, only words at those positions (and phrases that
        include one) are counted."""
        self.fresh = fresh
        table = self.lexicon.plain
        words, affix_starts = table.words, table.affix_starts
        self.stretched_words = squeezed != pieces
        for position, piece in enumerate(pieces):
            index = position + offset
            entry = words.get(piece)
            if entry is not None:
                if entry.markers:
                    self.languages |= entry.markers
                if entry.number:
                    self.numbers = True
                if entry.phrase_lengths:
                    self._phrases(index, pieces[position:], entry.phrase_lengths, table, offset)
                if entry.benign:
                    self.neutral.add(index)
                    continue
                if entry.terms:
                    self._hit(index, entry.terms, offset)
                    continue
            if piece[:3] in affix_starts:
                found = table.stem_terms(piece) + table.compound_terms(piece)
                if found:
                    self._hit(index, found, offset)
                    continue
            if self.stretched_words and squeezed[position] != piece:
                self._stretched(index, piece, squeezed[position], offset)
        if self.stretched_words:
            self._squeezed_phrases(squeezed, offset)

    def _hit(self, index: int, terms: tuple[Term, ...], offset: int, length: int = 1) -> None:
        if self.fresh is None or any(i - offset in self.fresh for i in range(index, index + length)):
            self.hits.append((index, terms))

    def _squeezed_phrases(self, pieces: list[str], offset: int) -> None:
        table = self.lexicon.squeezed
        for position, piece in enumerate(pieces):
            entry = table.words.get(piece)
            if entry is not None and entry.phrase_lengths:
                self._phrases(position + offset, pieces[position:], entry.phrase_lengths, table, offset)

    def _stretched(self, index: int, piece: str, word: str, offset: int) -> bool:
        """``piece`` with its repeated letters collapsed (``word``), when it is a list word written longer
        (``nuuude``, not ``goose`` for ``gosse``: each run of a letter at least as long as in the list word)."""
        table = self.lexicon.squeezed
        found = table.word_terms(word)
        found = tuple(t for t in found if _stretches(piece, t.form)) if found else table.compound_terms(word)
        if found:
            self._hit(index, found, offset)
        return bool(found)

    def _phrases(
        self, index: int, following: list[str], lengths: tuple[int, ...], table: LookupTable, offset: int
    ) -> None:
        """Phrases made of ``following`` (the words from ``index`` on)."""
        for length in lengths:
            phrase = table.phrases.get(" ".join(following[:length]))
            if phrase is None:
                continue
            if phrase.benign:
                self.neutral.update(range(index, index + length))
            else:
                self._hit(index, phrase.terms, offset, length)

    def rebuild(self, match: re.Match[str]) -> str:
        """The words an obfuscated stretch stands for (``n.u.d.e`` -> ``nude``; ``n u d e   k i d`` -> ``nude
        kid``: a gap wider than the one between letters separates words). Letters spelt out one by one are also
        searched for list words anywhere inside, since the gaps between their words may be lost too."""
        group = match.group()
        parts = PIECE.findall(group)
        if not all(len(part) == 1 for part in parts):
            return "".join(parts)
        letters = "".join(parts)
        found = self.lexicon.plain.terms_within(letters) or self.lexicon.squeezed.terms_within(squeeze(letters))
        if found:
            self.hits.append((-1, found))
        gaps = _GAP.findall(group)
        narrowest = min(len(gap) for gap in gaps)
        words, word = [], parts[0]
        for gap, part in zip(gaps, parts[1:], strict=True):
            if len(gap) > narrowest:
                words.append(word)
                word = ""
            word += part
        return " ".join([*words, word])

    def findings(self, text: str, ages: list[str]) -> Findings:
        """The terms that count, by category."""
        counted = [terms for index, terms in self.hits if index < 0 or index not in self.neutral]
        for terms in counted:
            languages = {t.language for t in terms if not t.ambiguous}
            if len(languages) == 1:  # a word of one language only says the text is in it
                self.languages |= languages
        by_category: dict[Category, list[str]] = {c: [] for c in Category}
        for terms in counted:
            for term in terms:
                if term.ambiguous and not self._shows(term.language, text):
                    continue
                labels = by_category[term.category]
                if term.label not in labels:
                    labels.append(term.label)
        by_category[Category.MINOR].extend(f"age:{age}" for age in ages)
        return Findings(*(tuple(by_category[c]) for c in Category))

    def _shows(self, language: str, text: str) -> bool:
        if language in self.languages:
            return True
        lowered = unicodedata.normalize("NFKC", text).lower()
        if any(letter in lowered for letter in self.lexicon.letters.get(language, "")):
            self.languages.add(language)
            return True
        return False


def _runs(word: str) -> list[tuple[str, int]]:
    return [(letter, len(list(group))) for letter, group in groupby(word)]


def _stretches(word: str, form: str) -> bool:
    """Whether ``word`` is ``form`` (or starts like the stem ``form``) with some letters repeated more."""
    word_runs, form_runs = _runs(word), _runs(form)
    if len(form_runs) > len(word_runs):
        return False
    pairs = zip(word_runs, form_runs[: len(word_runs)], strict=False)
    return all(w == f and w_count >= f_count for (w, w_count), (f, f_count) in pairs)


def _readings(folded: str) -> tuple[str, ...]:
    """The folded text, or, where leetspeak left :data:`I_OR_L`, the text with it read as ``i`` and as ``l``."""
    if I_OR_L not in folded:
        return (folded,)
    return (folded.replace(I_OR_L, "i"), folded.replace(I_OR_L, "l"))


def _rebuilt(folded: str, scan: _Scan) -> tuple[list[str], set[int]]:
    """The words of ``folded`` with each obfuscated stretch rebuilt, and the positions of the rebuilt ones."""
    words: list[str] = []
    fresh: set[int] = set()
    last = 0
    for match in _OBFUSCATED.finditer(folded):
        words.extend(PIECE.findall(folded[last : match.start()]))
        rebuilt = scan.rebuild(match).split(" ")
        fresh.update(range(len(words), len(words) + len(rebuilt)))
        words.extend(rebuilt)
        last = match.end()
    if fresh:
        words.extend(PIECE.findall(folded[last:]))
    return words, fresh


def find_terms(text: str, lexicon: Lexicon | None = None) -> Findings:
    """The list words in ``text`` (normalised first), by category."""
    if (lexicon is None or lexicon is default_lexicon()) and len(text) <= REMEMBERED_MAX_CHARS:
        return _shipped_findings(text)
    return _find_terms(text, lexicon or default_lexicon())


#: Texts up to this long have their findings (of the shipped lists) remembered: 1,024 of them at most, so a
#: few MB however hostile the traffic.
REMEMBERED_MAX_CHARS = 1000


@functools.lru_cache(maxsize=1024)
def _shipped_findings(text: str) -> Findings:
    """The findings of the shipped lists, remembered for the last 1,024 texts: a service sees the same texts
    again and again (a prompt run with other seeds, checkpoint and sampler names in every graph). A txt2img
    request's five texts took 131 us to check, ~40 us of it for the one that differs every time (its own file
    name prefix, no longer checked); a remembered text costs well under 1 us."""
    return _find_terms(text, default_lexicon())


def _find_terms(text: str, lexicon: Lexicon) -> Findings:
    characters = fold_lowered(compatible_lower(text))
    scan = _Scan(lexicon)
    for reading, folded in enumerate(_readings(fold_leet(characters))):
        pieces = PIECE.findall(folded)
        squeezed = squeeze(folded)
        scan.pieces(pieces, PIECE.findall(squeezed) if squeezed != folded else pieces, _PASS * 2 * reading)
        rebuilt, fresh = _rebuilt(folded, scan)
        if fresh:
            scan.pieces(rebuilt, [squeeze(word) for word in rebuilt], _PASS * (2 * reading + 1), fresh)
    ages = lexicon.ages.minor_ages(characters) if scan.numbers or _DIGIT.search(characters) else []
    if not scan.hits and not ages:
        return NOTHING
    return scan.findings(text, ages)
