"""The content-policy corpora (tests/data/policy) and the obfuscations that make the hostile one.

``hostile.tsv`` is written from ``hostile_base.tsv``: every base text in every obfuscation class below
(run ``python -m tests.unit.policy.corpus`` after changing either; a test checks the file is current).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "policy"

_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "а": "4", "е": "3", "о": "0"})
_LATIN_TO_CYRILLIC = str.maketrans("aeopcxyi", "аеорсхуі")
_CYRILLIC_TO_LATIN = str.maketrans("аеорсху", "aeopcxy")
_VOWELS = set("aeiouyаеиоуыэюяąęó")


def _is_cyrillic(text: str) -> bool:
    return any("\u0400" <= c <= "\u04ff" for c in text)


def _per_word(text: str, change: Callable[[str], str]) -> str:
    return " ".join(change(word) for word in text.split(" "))


def leet(text: str) -> str:
    """Letters written as digits (4 3 1 0 5 7)."""
    return text.lower().translate(_LEET)


def spaced(text: str) -> str:
    """Every letter apart, words three spaces apart."""
    return "   ".join(" ".join(word) for word in text.split(" "))


def punctuated(text: str) -> str:
    """Letters joined by dots inside each word."""
    return _per_word(text, lambda w: ".".join(w))


def homoglyph(text: str) -> str:
    """Look-alike letters of the other script: Cyrillic in Latin text, Latin in Cyrillic text."""
    return text.translate(_CYRILLIC_TO_LATIN if _is_cyrillic(text) else _LATIN_TO_CYRILLIC)


def zero_width(text: str) -> str:
    """Zero-width spaces and joiners between the letters."""
    return _per_word(text, lambda w: "\u200b".join(w[:2]) + "\u200d".join(w[2:]) if len(w) > 2 else w)


def fullwidth(text: str) -> str:
    """ASCII letters in their fullwidth forms (others stay)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def repeated(text: str) -> str:
    """Every vowel written three times."""
    return "".join(c * 3 if c.lower() in _VOWELS else c for c in text)


def combining(text: str) -> str:
    """A combining accent after every vowel."""
    return "".join(c + "\u0301" if c.lower() in _VOWELS else c for c in text)


def mixed_case(text: str) -> str:
    """aLtErNaTiNg case."""
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def joined(text: str) -> str:
    """The words run together (hashtag style)."""
    return "".join(text.split(" "))


OBFUSCATIONS: dict[str, Callable[[str], str]] = {
    "plain": lambda text: text,
    "leet": leet,
    "spaced": spaced,
    "punctuated": punctuated,
    "homoglyph": homoglyph,
    "zero_width": zero_width,
    "fullwidth": fullwidth,
    "repeated": repeated,
    "combining": combining,
    "mixed_case": mixed_case,
    "joined": joined,
}


@dataclass(frozen=True)
class HostileText:
    """One line of hostile.tsv."""

    language: str
    obfuscation: str
    base: str
    text: str


def base_texts() -> list[tuple[str, str]]:
    """(language, text) of hostile_base.tsv."""
    rows = []
    for line in (DATA / "hostile_base.tsv").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            language, text = line.split("\t")
            rows.append((language, text))
    return rows


def generate() -> list[HostileText]:
    """Every base text in every obfuscation class (a class that changes nothing is left out)."""
    out = []
    for language, base in base_texts():
        for name, change in OBFUSCATIONS.items():
            text = change(base)
            if name == "plain" or text != base:
                out.append(HostileText(language, name, base, text))
    return out


def hostile() -> list[HostileText]:
    """hostile.tsv as committed."""
    with (DATA / "hostile.tsv").open(encoding="utf-8", newline="") as handle:
        return [HostileText(**row) for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


def lines(name: str) -> list[str]:
    """A one-text-per-line corpus (benign.txt, adult.txt), comments and blank lines left out."""
    text = (DATA / name).read_text("utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


# the base text per language that the API tests run in every obfuscation class
API_BASES = {
    "en": "nude child",
    "pl": "naga dziewczynka",
    "ru": "голая девочка",
    "de": "nacktes Kind",
    "es": "niña desnuda",
    "fr": "fillette nue",
}


def one_per_class() -> list[HostileText]:
    """One hostile text per language and obfuscation class (what each API context is tried with)."""
    return [h for h in hostile() if API_BASES.get(h.language) == h.base]


def write_hostile() -> int:
    """Write hostile.tsv from the base texts; returns how many texts."""
    rows = generate()
    with (DATA / "hostile.tsv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar=None, lineterminator="\n")
        writer.writerow(["language", "obfuscation", "base", "text"])
        writer.writerows([r.language, r.obfuscation, r.base, r.text] for r in rows)
    return len(rows)


if __name__ == "__main__":
    sys.stdout.write(f"{write_hostile()} hostile texts written to {DATA / 'hostile.tsv'}\n")
