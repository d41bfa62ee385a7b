# SPDX-License-Identifier: Apache-2.0
"""The word lists of the content policy, one YAML file per language under ``wordlists/``, turned into look-up
tables in the folded form that :mod:`orchestrator.policy.normalize` gives texts.

A file holds, per category (:class:`Category`), a list of entries:

- ``word`` — a whole word; ``word*`` — a stem: the word and any longer word starting with it;
- ``word?`` — a word that also means something harmless in another language (German *Kind*, Spanish *niña*
  without its tilde is the name *Nina*); it counts only when the text shows it is written in this language:
  another word of this language's lists, one of its ``markers`` (function words) or one of its ``letters``;
- several words — a phrase (``little girl``); its words written together count too (``littlegirl``).

``connectors`` are small words (``with``, ``von``, ``de``) that may sit between list words written together
(``pornwithkids``). ``benign_phrases`` are word sequences that mean something harmless (``nude color``,
``baby yoda``): their words are not counted. ``benign_words`` are ordinary words that only collide with a list
word once repeated letters are collapsed (``rapping``, ``seeks``): they were found by running the 30,000 most
frequent words of each language (wordfreq's lists) through the matcher. The ``age_*`` lists describe ages
written with numbers (:class:`AgeReader`); ``measure_words`` are what ``under 5`` is not an age of.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib import resources
from typing import Any

import yaml

from orchestrator.policy.normalize import fold, fold_characters, squeeze

LANGUAGES = ("en", "pl", "ru", "de", "es", "fr")
PIECE = re.compile(r"[^\W_]+")
_MAX_PHRASE_WORDS = 4
_MAX_STEM_ENDING = 4  # letters a stem may take before the next word of a compound


class Category(StrEnum):
    """What a list word is about."""

    MINOR = "minor"
    SEXUAL = "sexual"
    SUGGESTIVE = "suggestive"
    MINOR_SEXUAL = "minor_sexual"


@dataclass(frozen=True)
class Term:
    """One list entry: ``label`` is ``<language>:<entry as written>``; ``form`` is the folded word (or stem,
    or the words of a phrase run together), against which a word with repeated letters is measured."""

    label: str
    language: str
    category: Category
    ambiguous: bool
    form: str


@dataclass
class WordEntry:
    """What one folded word is to the lists."""

    terms: tuple[Term, ...] = ()
    markers: frozenset[str] = frozenset()
    benign: bool = False
    phrase_lengths: tuple[int, ...] = ()
    number: bool = False  # a number written as a word (ages)
    connector: bool = False  # a small word that may join list words written together (with, von, de)


@dataclass(frozen=True)
class PhraseEntry:
    """A phrase of list words, or (``benign``) of harmless ones."""

    terms: tuple[Term, ...]
    benign: bool


@dataclass
class LookupTable:
    """Words, stems and phrases in one folded form (plain, or with repeated letters squeezed)."""

    words: dict[str, WordEntry] = field(default_factory=dict)
    stems: dict[str, tuple[Term, ...]] = field(default_factory=dict)
    phrases: dict[str, PhraseEntry] = field(default_factory=dict)
    stem_lengths: tuple[int, ...] = ()
    stem_starts: frozenset[str] = frozenset()
    compound_starts: frozenset[str] = frozenset()
    affix_starts: frozenset[str] = frozenset()
    tree: dict[str, Any] = field(default_factory=dict)  # letter -> subtree; _WORD / _STEM keys end words

    def entry(self, word: str) -> WordEntry:
        """The entry of ``word``, created when new."""
        found = self.words.get(word)
        if found is None:
            found = self.words[word] = WordEntry()
        return found

    def stem_terms(self, word: str) -> tuple[Term, ...]:
        """Terms of a listed stem that ``word`` starts with (none when it starts with no stem)."""
        if word[:3] not in self.stem_starts:
            return ()
        for length in self.stem_lengths:
            if length > len(word):
                break
            found = self.stems.get(word[:length])
            if found:
                return found
        return ()

    def word_terms(self, word: str) -> tuple[Term, ...]:
        """Terms of ``word`` as a whole word or by a stem."""
        entry = self.words.get(word)
        if entry is not None and entry.terms:
            return entry.terms
        return self.stem_terms(word)

    def compound_terms(self, word: str) -> tuple[Term, ...]:
        """Terms of a word written as list words run together, maybe with small connecting words between
        them (``childporn``, ``kinderporno``, ``pornwithkids``, ``erotischeFotosvonMinderjährigen``): the whole
        word must split into such parts, two list words at least; a stem may take an ending of up to 4 letters.
        An ambiguous list word counts as a part only from 4 letters on (``viol`` + ``ado`` is no compound)."""
        if len(word) < 6 or word[:3] not in self.compound_starts:
            return ()
        reached: dict[int, _Split] = {0: _Split(0, (), False)}
        for start in range(len(word)):
            if start in reached:
                self._segments(word, start, reached)
        split = reached.get(len(word))
        return split.terms if split is not None and split.words >= 2 else ()

    def _segments(self, word: str, start: int, reached: dict[int, _Split]) -> None:
        """Extend ``reached`` with every part that may follow position ``start`` (two one-letter connecting
        words in a row are not taken: ``anal`` + ``i`` + ``z`` + ``ados`` is a Spanish word, not a compound)."""
        split = reached[start]

        def reach(end: int, step: _Split) -> None:
            if end <= len(word) and step.words >= getattr(reached.get(end), "words", -1):
                reached[end] = step

        for end, entry, stem in self._prefixes(word, start):
            length = end - start
            if entry is not None and entry.terms and (length >= 4 or not any(t.ambiguous for t in entry.terms)):
                reach(end, _Split(split.words + 1, split.terms + entry.terms, False))
            elif entry is not None and entry.connector and not (length == 1 and split.after_letter):
                reach(end, _Split(split.words, split.terms, length == 1))
            if stem:
                for ending in range(_MAX_STEM_ENDING + 1):
                    reach(end + ending, _Split(split.words + 1, split.terms + stem, False))

    def _prefixes(self, word: str, start: int) -> Iterator[tuple[int, WordEntry | None, tuple[Term, ...]]]:
        """(end, word entry, stem terms) of every list word, connecting word or stem that ``word`` has at
        ``start``, found by walking the letter tree (one look-up per letter, not per word length)."""
        node = self.tree
        for end in range(start + 1, len(word) + 1):
            node = node.get(word[end - 1])  # type: ignore[assignment]
            if node is None:
                return
            entry, stem = node.get(_WORD), node.get(_STEM)
            if entry is not None or stem is not None:
                yield end, entry, stem or ()

    def terms_within(self, letters: str) -> tuple[Term, ...]:
        """Every unambiguous list word (of 3 letters or more) anywhere in ``letters``: for text spelt out letter
        by letter, where the spaces between its words are lost too (``n u d e c h i l d``)."""
        found: list[Term] = []
        for start in range(len(letters) - 2):
            for end, entry, stem in self._prefixes(letters, start):
                if end - start >= 3:
                    terms = (entry.terms if entry is not None else ()) + stem
                    found.extend(t for t in terms if not t.ambiguous and t not in found)
        return tuple(found)

    def finish(self) -> None:
        """Work out the fast-path sets once every entry is in."""
        self.stem_lengths = tuple(sorted({len(stem) for stem in self.stems}))
        self.stem_starts = frozenset(stem[:3] for stem in self.stems)
        self.compound_starts = frozenset(
            w[:3] for w, e in self.words.items() if (e.terms or e.connector) and len(w) >= 3
        ) | {stem[:3] for stem in self.stems}
        self.affix_starts = self.stem_starts | self.compound_starts
        self.tree = {}
        for word, entry in self.words.items():
            if entry.terms or entry.connector:
                _grow(self.tree, word)[_WORD] = entry
        for stem, terms in self.stems.items():
            _grow(self.tree, stem)[_STEM] = terms
        heads: dict[str, set[int]] = {}
        for phrase in self.phrases:
            words = phrase.split(" ")
            heads.setdefault(words[0], set()).add(len(words))
        for head, lengths in heads.items():
            self.entry(head).phrase_lengths = tuple(sorted(lengths))


_WORD = "$word"  # keys of a tree node that ends a list word (its WordEntry) or a stem (its terms): never letters
_STEM = "$stem"


def _grow(tree: dict[str, Any], word: str) -> dict[str, Any]:
    """The node of ``word`` in the letter tree, made where missing."""
    node = tree
    for letter in word:
        node = node.setdefault(letter, {})
    return node


@dataclass(frozen=True)
class _Split:
    """How far into a compound word a split got: list words met, their terms, and whether the last part was a
    one-letter connecting word."""

    words: int
    terms: tuple[Term, ...]
    after_letter: bool


class AgeReader:
    """Finds ages under 18 written with numbers: ``12 years old``, ``12yo``, ``aged 12``, ``under 16``,
    ``12-letnia``, ``12 лет`` — but not ``12 years ago``, ``il y a 12 ans`` or ``under 5 minutes``
    (``measure_words``). Each number is found first, then the words around it are looked at."""

    def __init__(self, files: list[Mapping[str, Any]]) -> None:
        def alternatives(key: str) -> str:
            items = {_spaced(fold_characters(str(v))) for f in files for v in f.get(key) or ()}
            return "|".join(sorted(items, key=len, reverse=True)) or "(?!)"

        self.numbers = {
            fold_characters(str(word)): int(value)
            for f in files
            for word, value in (f.get("age_numbers") or {}).items()
        }
        words = "|".join(re.escape(w) for w in sorted(self.numbers, key=len, reverse=True)) or "(?!)"
        self._number = re.compile(rf"(?<![\w.,])(?:(?P<d>\d{{1,2}})(?![\d%°]|[.,]\d)|(?P<w>{words})(?!\w))")
        self._unit = re.compile(rf"\s*-?\s*(?:{alternatives('age_units')})(?!\w)")
        self._ago_after = re.compile(rf"\s+(?:{alternatives('age_ago_after')})(?!\w)")
        self._ago_before = re.compile(rf"(?<!\w)(?:{alternatives('age_ago_before')})\s+$")
        self._before = re.compile(rf"(?<!\w)(?:{alternatives('age_before')})\s*$")
        self._under = re.compile(rf"(?<!\w)(?:{alternatives('age_under')})\s*$")
        self._measure = re.compile(rf"\s*(?:{alternatives('measure_words')})(?!\w)")

    def minor_ages(self, text: str) -> list[str]:
        """Ages under 18 in ``text`` (already through :func:`fold_characters`): ``12``, ``under 16``."""
        ages: list[str] = []
        for match in self._number.finditer(text):
            start, end = match.span()
            value = int(match.group("d")) if match.group("d") else self.numbers[match.group("w")]
            before = text[max(0, start - 24) : start]
            unit = self._unit.match(text, end)
            if unit is not None:
                if value < 18 and not self._ago_after.match(text, unit.end()) and not self._ago_before.search(before):
                    ages.append(str(value))
                continue
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                continue
            if value < 18 and self._before.search(before):
                ages.append(str(value))
            elif value <= 18 and self._under.search(before) and not self._measure.match(text, end):
                ages.append(f"under {value}")
        return ages


def _spaced(words: str) -> str:
    """A folded phrase as a pattern in which its spaces may be any run of spaces or hyphens."""
    return r"[\s-]+".join(re.escape(part) for part in words.split())


@dataclass(frozen=True)
class Lexicon:
    """Every language's lists, in both folded forms, plus the age reader."""

    plain: LookupTable
    squeezed: LookupTable
    ages: AgeReader
    letters: dict[str, str]  # language -> its own letters, lower case (seen in the text as NFKC + lower())
    size: int

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages loaded."""
        return tuple(self.letters)


def _folded_words(text: str) -> list[str]:
    return PIECE.findall(fold(text))


class _Builder:
    """Fills both tables from the parsed files."""

    def __init__(self) -> None:
        self.plain, self.squeezed = LookupTable(), LookupTable()
        self.size = 0

    def add_term(self, raw: str, language: str, category: Category) -> None:
        entry = raw.strip()
        ambiguous, stem = entry.endswith("?"), entry.endswith("*")
        words = _folded_words(entry.rstrip("?*"))
        term = Term(f"{language}:{entry.rstrip('?')}", language, category, ambiguous, "".join(words))
        self.size += 1
        for table, form in ((self.plain, words), (self.squeezed, [squeeze(w) for w in words])):
            if stem and len(form) == 1:
                table.stems[form[0]] = _merge(table.stems.get(form[0], ()), term)
            elif len(form) == 1:
                found = table.entry(form[0])
                found.terms = _merge(found.terms, term)
            elif 1 < len(form) <= _MAX_PHRASE_WORDS:
                key = " ".join(form)
                table.phrases[key] = PhraseEntry(_merge(table.phrases.get(key, _NO_PHRASE).terms, term), False)
                joined = table.entry("".join(form))
                joined.terms = _merge(joined.terms, term)
            else:
                raise ValueError(f"word list entry {raw!r} ({language}) has no words or too many")

    def add_benign_phrase(self, raw: str) -> None:
        words = _folded_words(raw)
        for table, form in ((self.plain, words), (self.squeezed, [squeeze(w) for w in words])):
            if len(form) > 1:
                table.phrases[" ".join(form)] = PhraseEntry((), True)
            elif form:
                table.entry(form[0]).benign = True

    def add_marker(self, raw: str, language: str) -> None:
        for word in _folded_words(raw)[:1]:
            entry = self.plain.entry(word)
            entry.markers = entry.markers | {language}


_NO_PHRASE = PhraseEntry((), False)


def _merge(terms: tuple[Term, ...], term: Term) -> tuple[Term, ...]:
    """``terms`` with ``term`` added. Entries of one language that fold to the same word share ambiguity:
    ``naga?`` makes ``nagą`` (which folds to ``naga`` too) ambiguous."""
    if term in terms:
        return terms
    merged = (*terms, term)
    ambiguous = {t.language for t in merged if t.ambiguous}
    return tuple(replace(t, ambiguous=True) if t.language in ambiguous else t for t in merged)


def load_lexicon(files: Mapping[str, Mapping[str, Any]]) -> Lexicon:
    """Build the look-up tables from parsed word-list files (language -> content)."""
    builder = _Builder()
    for language, content in files.items():
        for category in Category:
            for raw in content.get(category.value) or ():
                builder.add_term(str(raw), language, category)
        for raw in content.get("benign_phrases") or ():
            builder.add_benign_phrase(str(raw))
        for raw in content.get("benign_words") or ():
            for word in _folded_words(str(raw)):
                builder.plain.entry(word).benign = True
        for raw in content.get("markers") or ():
            builder.add_marker(str(raw), language)
        for raw in content.get("connectors") or ():
            for table, word in ((builder.plain, fold(str(raw))), (builder.squeezed, squeeze(fold(str(raw))))):
                table.entry(word).connector = True
    ages = AgeReader(list(files.values()))
    for word in ages.numbers:
        builder.plain.entry(word).number = True
    builder.plain.finish()
    builder.squeezed.finish()
    letters = {language: str(content.get("letters") or "").lower() for language, content in files.items()}
    return Lexicon(builder.plain, builder.squeezed, ages, letters, builder.size)


def read_wordlists(languages: Iterable[str] = LANGUAGES) -> dict[str, dict[str, Any]]:
    """The shipped word-list files, parsed."""
    folder = resources.files("orchestrator.policy") / "wordlists"
    return {language: yaml.safe_load((folder / f"{language}.yaml").read_text("utf-8")) for language in languages}


@functools.cache
def default_lexicon() -> Lexicon:
    """The shipped lists of every language, loaded once per process."""
    return load_lexicon(read_wordlists())
