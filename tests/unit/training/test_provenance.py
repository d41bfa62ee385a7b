"""Publishing: provenance added beside sd-scripts' keys, tensors copied as they are, atomic and hashed."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from trainer.provenance import Provenance, ProvenanceError, read_metadata, write_with_provenance

SS_METADATA = {"ss_network_dim": "4", "ss_output_name": "zxq", "modelspec.architecture": "stable-diffusion-v1/lora"}


def _lora(path: Path, metadata: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {
        "lora_unet_a.lora_down.weight": rng.standard_normal((4, 320)).astype(np.float32),
        "lora_unet_a.lora_up.weight": rng.standard_normal((320, 4)).astype(np.float16),
        "lora_unet_a.alpha": np.array(4.0, dtype=np.float32),
    }
    save_file(tensors, str(path), metadata=SS_METADATA if metadata is None else metadata)
    return tensors


def _provenance(**changes: object) -> Provenance:
    values: dict[str, object] = {
        "subject_id": "s-1",
        "consent_sha256": "c" * 64,
        "dataset_manifest_sha256": "d" * 64,
        "base_model": "sd15.safetensors",
        "base_model_sha256": "b" * 64,
        "base_family": "sd15",
        "trigger_word": "zxq",
        "service_version": "0.1.0",
        "lora_name": "zxq-lora",
        "lora_version": 2,
        "training_job_id": "j-1",
        "parameters": {"steps": 6, "network_dim": 4},
    }
    values.update(changes)
    return Provenance(**values)  # type: ignore[arg-type]


def test_provenance_is_added_beside_the_sd_scripts_keys_and_tensors_are_unchanged(tmp_path: Path) -> None:
    source, target = tmp_path / "out.safetensors", tmp_path / "models" / "s-1" / "v2" / "zxq-lora.safetensors"
    tensors = _lora(source)
    published = write_with_provenance(source, target, _provenance().metadata())
    assert published.path == target
    assert published.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert published.size == target.stat().st_size
    metadata = read_metadata(target)
    assert metadata == published.metadata
    assert {k: metadata[k] for k in SS_METADATA} == SS_METADATA
    assert metadata["atelier_consent_sha256"] == "c" * 64
    assert metadata["atelier_lora_version"] == "2"
    assert json.loads(metadata["atelier_training_parameters"]) == {"steps": 6, "network_dim": 4}
    assert metadata["modelspec.trigger_phrase"] == "zxq"
    loaded = load_file(str(target))
    assert set(loaded) == set(tensors)
    for name, values in tensors.items():
        assert loaded[name].dtype == values.dtype
        np.testing.assert_array_equal(loaded[name], values)
    (header_length,) = struct.unpack("<Q", target.read_bytes()[:8])
    assert (8 + header_length) % 8 == 0
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left


def test_republishing_replaces_only_our_keys(tmp_path: Path) -> None:
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _lora(tmp_path / "src.safetensors")
    write_with_provenance(tmp_path / "src.safetensors", first, _provenance().metadata())
    write_with_provenance(first, second, _provenance(lora_version=3).metadata())
    assert read_metadata(second)["atelier_lora_version"] == "3"


def test_an_sd_scripts_key_is_never_overwritten(tmp_path: Path) -> None:
    _lora(tmp_path / "src.safetensors")
    with pytest.raises(ProvenanceError, match="not ours"):
        write_with_provenance(tmp_path / "src.safetensors", tmp_path / "t.safetensors", {"ss_network_dim": "64"})
    assert not (tmp_path / "t.safetensors").exists()


def test_a_truncated_file_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    source = tmp_path / "src.safetensors"
    _lora(source)
    source.write_bytes(source.read_bytes()[:-10])
    with pytest.raises(ProvenanceError, match="tensors end"):
        write_with_provenance(source, tmp_path / "t.safetensors", _provenance().metadata())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.safetensors"]


def test_garbage_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "src.safetensors"
    source.write_bytes(struct.pack("<Q", 5) + b"nope!")
    with pytest.raises(ProvenanceError, match="not JSON"):
        write_with_provenance(source, tmp_path / "t.safetensors", {})
