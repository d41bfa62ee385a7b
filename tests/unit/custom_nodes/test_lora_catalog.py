"""Listing Atelier LoRAs from a folder tree, combo entries, resolving a graph's value back to the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custom_nodes.atelier_nodes import lora_catalog
from custom_nodes.atelier_nodes.lora_catalog import (
    HeaderCache,
    catalog,
    entries,
    format_entry,
    in_layout,
    key_from_entry,
    key_of,
    resolve,
    scan_folder,
)
from tests.unit.custom_nodes.safetensors_files import atelier_metadata, write_safetensors


@pytest.fixture
def loras(tmp_path: Path) -> Path:
    """A loras folder with Atelier LoRAs, foreign LoRAs and other files."""
    root = tmp_path / "loras"
    write_safetensors(root / "subj-b/v2/bob.safetensors", atelier_metadata(trigger="ohwx  bob", name="bob"))
    write_safetensors(root / "subj-a/v10/alice.safetensors", atelier_metadata(trigger="ohwx alice", version=10))
    write_safetensors(root / "subj-a/v2/alice.safetensors", atelier_metadata(trigger="ohwx alice", version=2))
    write_safetensors(root / "subj-a/v1/alice.safetensors", {"ss_output_name": "alice"})  # sd-scripts keys only
    write_safetensors(root / "downloaded.safetensors", atelier_metadata(trigger=None, name="carol"))
    write_safetensors(root / "styles/ink.safetensors", {"ss_output_name": "ink"})  # not ours, not the layout
    write_safetensors(root / "sdxl/styles/wash.safetensors", {})  # 3 parts, but "styles" is no version
    (root / "subj-c/v1").mkdir(parents=True)
    (root / "subj-c/v1/broken.safetensors").write_bytes(b"\x00")  # in the layout, unreadable header
    (root / "subj-a/v2/notes.txt").write_text("not a model")
    return root


def test_lists_atelier_loras_sorted_by_subject_version_and_name(loras: Path) -> None:
    found = scan_folder(loras)
    assert [lora.key for lora in found] == [
        "downloaded",
        "subj-a/v1/alice",
        "subj-a/v2/alice",
        "subj-a/v10/alice",
        "subj-b/v2/bob",
    ]
    assert entries(found) == [
        "downloaded",
        "subj-a/v1/alice",
        "subj-a/v2/alice (trigger: ohwx alice)",
        "subj-a/v10/alice (trigger: ohwx alice)",
        "subj-b/v2/bob (trigger: ohwx bob)",
    ]
    assert found[0].info.lora_name == "carol"
    assert found[0].relative_name == "downloaded.safetensors"
    assert found[2].relative_name == os.path.join("subj-a", "v2", "alice.safetensors")


def test_catalog_takes_a_folder_list_and_a_locator(loras: Path) -> None:
    names = ["subj-b/v2/bob.safetensors", "gone/v1/x.safetensors", "styles/ink.safetensors"]
    found = catalog(names, lambda name: loras / name if (loras / name).exists() else None)
    assert [lora.entry for lora in found] == ["subj-b/v2/bob (trigger: ohwx bob)"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("subj/v1/a.safetensors", True),
        ("subj/3/a.safetensors", True),
        ("subj\\v1\\a.safetensors", True),
        ("subj/v1/a.SAFETENSORS", True),
        ("subj/latest/a.safetensors", False),
        ("subj/v1/a.ckpt", False),
        ("subj/v1/extra/a.safetensors", False),
        ("v1/a.safetensors", False),
        ("subj//a.safetensors", False),
    ],
)
def test_layout(name: str, expected: bool) -> None:
    assert in_layout(name) is expected


def test_key_uses_forward_slashes_and_drops_the_suffix() -> None:
    assert key_of("subj\\v1\\a.safetensors") == "subj/v1/a"
    assert key_of("subj/v1/a.safetensors") == "subj/v1/a"


def test_entry_formatting() -> None:
    assert format_entry("s/v1/a", "ohwx\tperson ") == "s/v1/a (trigger: ohwx person)"
    assert format_entry("s/v1/a", None) == "s/v1/a"
    assert format_entry("s/v1/a", "") == "s/v1/a"


@given(
    key=st.text(min_size=1).filter(lambda k: " (trigger: " not in k),
    trigger=st.none() | st.text(min_size=1).filter(str.strip),
)
def test_the_key_comes_back_out_of_an_entry(key: str, trigger: str | None) -> None:
    assert key_from_entry(format_entry(key, trigger)) == key


def test_resolve_accepts_entries_keys_and_list_names(loras: Path) -> None:
    found = scan_folder(loras)
    bob = found[-1]
    assert resolve("subj-b/v2/bob (trigger: ohwx bob)", found) is bob
    assert resolve("subj-b/v2/bob", found) is bob
    assert resolve(bob.relative_name, found) is bob
    assert resolve("subj-b/v3/bob", found) is None


def test_the_cache_reads_a_header_again_only_when_the_file_changes(
    loras: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[Path] = []
    real = lora_catalog.read_metadata

    def counting(path: Path) -> dict[str, str]:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(lora_catalog, "read_metadata", counting)
    cache = HeaderCache()
    scan_folder(loras, cache)
    first = len(reads)
    assert first == 8  # every .safetensors file once
    scan_folder(loras, cache)
    assert len(reads) == first
    bob = loras / "subj-b/v2/bob.safetensors"
    write_safetensors(bob, atelier_metadata(trigger="new words", name="bob"))
    os.utime(bob, ns=(bob.stat().st_atime_ns, bob.stat().st_mtime_ns + 1_000_000))
    assert scan_folder(loras, cache)[-1].entry == "subj-b/v2/bob (trigger: new words)"
    assert reads[first:] == [bob]


def test_the_cache_forgets_removed_files(loras: Path) -> None:
    cache = HeaderCache()
    scan_folder(loras, cache)
    size = len(cache)
    (loras / "subj-b/v2/bob.safetensors").unlink()
    assert [lora.key for lora in scan_folder(loras, cache)][-1] == "subj-a/v10/alice"
    assert cache.metadata(loras / "subj-b/v2/bob.safetensors") is None
    assert len(cache) == size - 1
