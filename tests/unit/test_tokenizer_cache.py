"""The offline CLIP tokenizer cache for sd-scripts, built from synthetic BPE files."""

from __future__ import annotations

import gzip
import itertools
import json
import sys
import zipfile
from pathlib import Path

import pytest

from trainer import tokenizer_cache as tc

# Real CLIP merges look like this: pairs of byte symbols, "</w>" marking a word's end.
TINY_MERGES = [("i", "n"), ("t", "h"), ("a", "n</w>"), ("th", "e</w>"), ("in", "g</w>")]


def _bpe_bytes(merges: list[tuple[str, str]], *, header: str = "bpe_simple_vocab_16e6.txt#version: 0.2") -> bytes:
    text = header + "\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return gzip.compress(text.encode("utf-8"))


def _many_merges(count: int) -> list[tuple[str, str]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    pairs = itertools.product(letters, repeat=4)
    return [(a + b, c + d + "</w>") for a, b, c, d in itertools.islice(pairs, count)]


def test_vocab_starts_with_256_byte_symbols_then_their_word_end_variants() -> None:
    vocab = tc.build_vocab(TINY_MERGES)
    by_id = sorted(vocab, key=vocab.__getitem__)
    byte_symbols = by_id[:256]
    assert len(set(byte_symbols)) == 256
    assert all(len(symbol) == 1 for symbol in byte_symbols)
    assert byte_symbols[0] == "!"
    assert by_id[256:512] == [symbol + "</w>" for symbol in byte_symbols]
    # Bytes that are not printable map to code points from 256 on (space is byte 32 -> U+0120).
    assert "\N{LATIN CAPITAL LETTER G WITH DOT ABOVE}" in byte_symbols
    assert " " not in vocab


def test_vocab_adds_one_token_per_merge_then_the_two_special_tokens() -> None:
    vocab = tc.build_vocab(TINY_MERGES)
    assert [vocab["in"], vocab["th"], vocab["an</w>"], vocab["the</w>"], vocab["ing</w>"]] == list(range(512, 517))
    assert vocab["<|startoftext|>"] == 517
    assert vocab["<|endoftext|>"] == 518
    assert len(vocab) == 256 * 2 + len(TINY_MERGES) + 2
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_parse_skips_header_and_blank_lines_and_reads_plain_text() -> None:
    plain = b"#version: 0.2\ni n\n\nt h\n\n"
    assert tc.parse_merges(plain) == [("i", "n"), ("t", "h")]
    assert tc.parse_merges(_bpe_bytes(TINY_MERGES)) == TINY_MERGES


def test_parse_rejects_a_line_that_is_not_a_pair() -> None:
    with pytest.raises(ValueError, match="line 3"):
        tc.parse_merges(b"header\ni n\nthree symbols here\n")


def test_a_full_size_file_is_cut_to_clips_merge_count_giving_49408_tokens() -> None:
    merges = _many_merges(tc.MAX_MERGES + 50)
    parsed = tc.parse_merges(_bpe_bytes(merges))
    assert len(parsed) == tc.MAX_MERGES == 48894
    assert len(tc.build_vocab(parsed)) == 49408


def test_tokenizer_folder_has_the_files_a_clip_tokenizer_reads(tmp_path: Path) -> None:
    [sd15] = tc.build_tokenizer_cache(tmp_path, _bpe_bytes(TINY_MERGES), include_sdxl=False)
    assert sd15 == tmp_path / "openai_clip-vit-large-patch14"
    assert sorted(p.name for p in sd15.iterdir()) == [
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.json",
    ]
    merges_lines = (sd15 / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges_lines[0] == "#version: 0.2"
    assert merges_lines[1:] == [f"{a} {b}" for a, b in TINY_MERGES]
    vocab = json.loads((sd15 / "vocab.json").read_text(encoding="utf-8"))
    assert vocab == tc.build_vocab(TINY_MERGES)
    config = json.loads((sd15 / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["model_max_length"] == 77
    assert (config["bos_token"], config["eos_token"], config["pad_token"]) == (
        "<|startoftext|>",
        "<|endoftext|>",
        "<|endoftext|>",
    )
    specials = json.loads((sd15 / "special_tokens_map.json").read_text(encoding="utf-8"))
    assert specials["pad_token"] == "<|endoftext|>"


def test_sdxl_second_tokenizer_shares_the_vocab_and_pads_with_bang(tmp_path: Path) -> None:
    paths = tc.build_tokenizer_cache(tmp_path, _bpe_bytes(TINY_MERGES))
    assert [p.name for p in paths] == ["openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k"]
    sd15, sdxl2 = paths
    assert (sd15 / "vocab.json").read_bytes() == (sdxl2 / "vocab.json").read_bytes()
    assert json.loads((sdxl2 / "tokenizer_config.json").read_text(encoding="utf-8"))["pad_token"] == "!"


def test_rebuilding_replaces_the_old_folder_and_leaves_no_staging_dirs(tmp_path: Path) -> None:
    tc.build_tokenizer_cache(tmp_path, _bpe_bytes(TINY_MERGES), include_sdxl=False)
    stale = tmp_path / "openai_clip-vit-large-patch14" / "stale.txt"
    stale.write_text("old", encoding="utf-8")
    tc.build_tokenizer_cache(tmp_path, _bpe_bytes(TINY_MERGES[:2]), include_sdxl=False)
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["openai_clip-vit-large-patch14"]
    vocab = json.loads((tmp_path / "openai_clip-vit-large-patch14" / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 512 + 2 + 2


def test_bpe_is_found_inside_a_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "open_clip_torch-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("open_clip/__init__.py", "")
        archive.writestr("open_clip/bpe_simple_vocab_16e6.txt.gz", _bpe_bytes(TINY_MERGES))
    assert tc.parse_merges(tc.load_bpe(wheel=wheel)) == TINY_MERGES


def test_a_wheel_without_bpe_is_reported(tmp_path: Path) -> None:
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/__init__.py", "")
    with pytest.raises(tc.BpeNotFoundError):
        tc.bpe_from_wheel(wheel)


def test_bpe_is_found_in_a_package_of_another_python_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "clip"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n", encoding="utf-8")
    (package / tc.BPE_FILE_NAME).write_bytes(_bpe_bytes(TINY_MERGES))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    assert tc.bpe_path_in_python(sys.executable) == package / tc.BPE_FILE_NAME
    assert tc.parse_merges(tc.load_bpe(python=sys.executable)) == TINY_MERGES


def test_a_python_without_clip_packages_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(tc.BpeNotFoundError):
        tc.bpe_path_in_python(sys.executable, packages=("no_such_clip_package_here",))


def test_command_line_builds_the_cache_and_fails_cleanly_without_bpe(tmp_path: Path) -> None:
    bpe = tmp_path / tc.BPE_FILE_NAME
    bpe.write_bytes(_bpe_bytes(TINY_MERGES))
    assert tc.main(["--cache-dir", str(tmp_path / "cache"), "--bpe", str(bpe), "--no-sdxl"]) == 0
    assert (tmp_path / "cache" / "openai_clip-vit-large-patch14" / "vocab.json").is_file()
    empty_wheel = tmp_path / "empty.whl"
    with zipfile.ZipFile(empty_wheel, "w"):
        pass
    assert tc.main(["--cache-dir", str(tmp_path / "cache2"), "--wheel", str(empty_wheel)]) == 2
    assert not (tmp_path / "cache2").exists()


def test_ensure_builds_once_from_the_clip_package_of_a_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "clip").mkdir(parents=True)
    (site / "clip" / "__init__.py").write_text("")
    (site / "clip" / "bpe_simple_vocab_16e6.txt.gz").write_bytes(_bpe_bytes([("h", "e"), ("he", "l</w>")]))
    monkeypatch.setenv("PYTHONPATH", str(site))
    cache = tmp_path / "cache"

    assert tc.ensure_tokenizer_cache(cache, sys.executable) == cache
    vocab = cache / tc.SD15_TOKENIZER.dir_name / "vocab.json"
    built_at = vocab.stat().st_mtime_ns
    assert (cache / tc.SDXL_TOKENIZER2.dir_name / "vocab.json").is_file()

    tc.ensure_tokenizer_cache(cache, sys.executable)
    assert vocab.stat().st_mtime_ns == built_at, "an existing cache is left alone"


def test_ensure_without_a_clip_package_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(tc.BpeNotFoundError):
        tc.ensure_tokenizer_cache(tmp_path / "cache", sys.executable)
