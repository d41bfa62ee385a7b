"""Reading a LoRA's safetensors header metadata without loading tensors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from custom_nodes.atelier_nodes.lora_metadata import HeaderError, LoraInfo, lora_info, read_metadata
from tests.unit.custom_nodes.safetensors_files import atelier_metadata, header_bytes, write_safetensors
from trainer.provenance import Provenance, write_with_provenance


def test_reads_the_metadata_object(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", {"atelier_trigger_word": "ohwx", "ss_network_dim": "4"})
    assert read_metadata(path) == {"atelier_trigger_word": "ohwx", "ss_network_dim": "4"}


def test_a_file_without_metadata_has_none(tmp_path: Path) -> None:
    assert read_metadata(write_safetensors(tmp_path / "a.safetensors")) == {}


def test_values_that_are_not_strings_are_left_out(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", {"ok": "yes", "number": 4, "nested": {"a": "b"}})
    assert read_metadata(path) == {"ok": "yes"}


def test_only_the_header_is_read(tmp_path: Path) -> None:
    # The data section is shorter than the tensor claims: reading tensors would fail, reading the header does not.
    path = write_safetensors(tmp_path / "a.safetensors", {"k": "v"}, data=b"")
    assert read_metadata(path) == {"k": "v"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x01\x02", "shorter than a safetensors header"),
        (struct.pack("<Q", 1000) + b"{}", "does not fit the file"),
        (struct.pack("<Q", 2**62) + b"{}", "does not fit the file"),
        (struct.pack("<Q", 4) + b"nope", "not JSON"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not JSON"),
        (header_bytes([1, 2]), "not a JSON object"),
        (header_bytes({"__metadata__": ["a"]}), "__metadata__ is not a JSON object"),
    ],
)
def test_broken_files_are_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(HeaderError, match=reason):
        read_metadata(path)


def test_agrees_with_the_publisher(tmp_path: Path) -> None:
    source = write_safetensors(tmp_path / "trained.safetensors", {"ss_output_name": "run", "ss_network_dim": "4"})
    provenance = Provenance(
        subject_id="6c1e",
        consent_sha256="c" * 64,
        dataset_manifest_sha256="d" * 64,
        base_model="sd15-base",
        base_model_sha256="b" * 64,
        base_family="sd15",
        trigger_word="ohwx alice",
        service_version="0.1.0",
        lora_name="alice",
        lora_version=3,
        training_job_id="job-1",
        parameters={"steps": 100},
    )
    published = write_with_provenance(source, tmp_path / "6c1e/v3/alice.safetensors", provenance.metadata())
    metadata = read_metadata(published.path)
    assert metadata == published.metadata
    assert lora_info(metadata) == LoraInfo(
        trigger_word="ohwx alice",
        lora_name="alice",
        version=3,
        subject_id="6c1e",
        base_model="sd15-base",
        base_family="sd15",
        from_atelier=True,
    )


def test_info_prefers_our_keys() -> None:
    info = lora_info({**atelier_metadata(trigger="ohwx"), "modelspec.trigger_phrase": "other"})
    assert (info.trigger_word, info.lora_name, info.version, info.from_atelier) == ("ohwx", "alice", 1, True)


def test_info_falls_back_to_sd_scripts_keys() -> None:
    metadata = {
        "ss_output_name": "lab_lora",
        "modelspec.trigger_phrase": "labshape",
        "ss_sd_model_name": "sd15-random.safetensors",
        "ss_base_model_version": "sd_v1",
        "ss_training_comment": "None",
    }
    assert lora_info(metadata) == LoraInfo(
        trigger_word="labshape",
        lora_name="lab_lora",
        base_model="sd15-random.safetensors",
        base_family="sd_v1",
    )


@pytest.mark.parametrize(("text", "version"), [("3", 3), ("v12", 12), ("three", None), ("", None)])
def test_version_is_read_as_a_number(text: str, version: int | None) -> None:
    assert lora_info({"atelier_lora_version": text}).version == version


def test_blank_and_none_values_count_as_absent() -> None:
    assert lora_info({"atelier_trigger_word": "  ", "modelspec.trigger_phrase": "None"}).trigger_word is None
