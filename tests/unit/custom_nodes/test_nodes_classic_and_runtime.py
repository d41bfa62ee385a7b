"""The classic node classes, what the nodes do when run, and the calls into ComfyUI (against stand-ins)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from custom_nodes.atelier_nodes import comfy_runtime
from custom_nodes.atelier_nodes.nodes_classic import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from custom_nodes.atelier_nodes.vocabulary import ANY_COMBO, LOCAL_LORA_TIP, MARKER_IDS, MARKERS, NODE_IDS
from tests.unit.custom_nodes.fake_comfy import FolderPaths, Loader, nodes_module
from tests.unit.custom_nodes.safetensors_files import atelier_metadata, write_safetensors


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FolderPaths:
    """``folder_paths`` stand-in with two Atelier LoRAs (one without a trigger word) and a foreign one."""
    write_safetensors(tmp_path / "loras/subj/v1/alice.safetensors", atelier_metadata(trigger="ohwx alice"))
    write_safetensors(tmp_path / "loras/subj/v2/alice.safetensors", atelier_metadata(trigger=None, version=2))
    write_safetensors(tmp_path / "loras/other.safetensors", {"modelspec.trigger_phrase": "inkwash"})
    write_safetensors(tmp_path / "checkpoints/base.safetensors")
    folders = FolderPaths(tmp_path)
    monkeypatch.setitem(sys.modules, "folder_paths", folders.module())
    return folders


@pytest.fixture
def loader(monkeypatch: pytest.MonkeyPatch, folders: FolderPaths) -> Loader:
    """``comfy.utils`` / ``comfy.sd`` stand-ins of a current ComfyUI (LoRA metadata supported)."""
    fake = Loader()
    for name, module in fake.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return fake


def test_classic_mappings_cover_every_node() -> None:
    assert list(NODE_CLASS_MAPPINGS) == list(NODE_IDS)
    assert list(NODE_DISPLAY_NAME_MAPPINGS) == list(NODE_IDS)
    assert NODE_DISPLAY_NAME_MAPPINGS["AtelierLoraLoader"] == "Atelier LoRA Loader"


@pytest.mark.usefixtures("folders")
def test_classic_input_types_list_the_files_now() -> None:
    types = NODE_CLASS_MAPPINGS["AtelierLoraLoader"].INPUT_TYPES()
    assert list(types) == ["required"]
    assert types["required"]["lora"] == (
        ["subj/v1/alice (trigger: ohwx alice)", "subj/v2/alice"],
        {"tooltip": LOCAL_LORA_TIP},
    )
    seed = NODE_CLASS_MAPPINGS["AtelierSeedInput"].INPUT_TYPES()
    assert seed["required"]["seed"] == (
        "INT",
        {"default": 0, "min": 0, "max": 2**64 - 1, "control_after_generate": True},
    )
    assert list(seed["optional"]) == ["description"]
    checkpoint = NODE_CLASS_MAPPINGS["AtelierCheckpointInput"].INPUT_TYPES()["required"]["ckpt_name"]
    assert checkpoint == (["base.safetensors"], {})


def test_classic_return_types() -> None:
    assert NODE_CLASS_MAPPINGS["AtelierLoraLoader"].RETURN_TYPES == ("MODEL", "CLIP", "STRING")
    assert NODE_CLASS_MAPPINGS["AtelierLoraLoader"].RETURN_NAMES == ("MODEL", "CLIP", "trigger_word")
    assert NODE_CLASS_MAPPINGS["AtelierLoraInput"].RETURN_TYPES == (ANY_COMBO,)
    assert NODE_CLASS_MAPPINGS["AtelierSeedInput"].FUNCTION == "run"
    assert NODE_CLASS_MAPPINGS["AtelierPromptInput"].CATEGORY == "Atelier/parameters"


@pytest.mark.parametrize("node_id", [n for n in MARKER_IDS if n != "AtelierImageInput"])
def test_markers_pass_their_value_through(node_id: str) -> None:
    reading = MARKERS[node_id]
    value = {"prompt": "a cat", "int": 3, "seed": 3, "float": 0.5, "choice": "euler"}.get(reading.kind, "f.safetensors")
    bounds = {"min": 0, "max": 10} if reading.bounded else {}
    node = NODE_CLASS_MAPPINGS[node_id]()
    assert node.run(name="field", **{reading.value_input: value}, **bounds) == (value,)


def test_the_image_marker_loads_its_image_like_load_image(
    folders: FolderPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folders.root / "input").mkdir()
    (folders.root / "input/cat.png").write_bytes(b"first")
    monkeypatch.setitem(sys.modules, "nodes", nodes_module(folders.root / "input"))
    node = NODE_CLASS_MAPPINGS["AtelierImageInput"]
    assert node().run(name="init", image="cat.png") == ("IMAGE of cat.png", "MASK of cat.png")
    assert node.RETURN_TYPES == ("IMAGE", "MASK")
    assert node.VALIDATE_INPUTS("cat.png") is True
    assert node.VALIDATE_INPUTS("dog.png") == "Invalid image file: dog.png"
    before = node.IS_CHANGED("cat.png", name="init")
    (folders.root / "input/cat.png").write_bytes(b"second")
    assert node.IS_CHANGED("cat.png", name="init") != before


@pytest.mark.parametrize(
    ("value", "low", "high", "message"),
    [(11, 1, 10, "outside"), (0, 1, 10, "outside"), (5, 10, 1, "larger than max"), (0.51, 0.0, 0.5, "outside")],
)
def test_numeric_markers_check_their_bounds(value: float, low: float, high: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NODE_CLASS_MAPPINGS["AtelierFloatInput"]().run(name="cfg", value=value, min=low, max=high)


def test_lora_loader_applies_the_lora_with_comfyuis_functions(loader: Loader, folders: FolderPaths) -> None:
    node = NODE_CLASS_MAPPINGS["AtelierLoraLoader"]()
    model, clip, trigger = node.run(
        model="M", clip="C", lora="subj/v1/alice (trigger: ohwx alice)", strength_model=0.8, strength_clip=0.4
    )
    assert (model, clip, trigger) == (("patched", "M"), ("patched", "C"), "ohwx alice")
    path = str(folders.root / "loras/subj/v1/alice.safetensors")
    assert loader.calls == [
        ("load", (path,), {"safe_load": True, "return_metadata": True}),
        ("apply", ("M", "C", {"weights-of": path}, 0.8, 0.4), {"lora_metadata": {"from": "file"}}),
    ]


def test_model_only_loader_leaves_the_text_encoder_alone(loader: Loader) -> None:
    node = NODE_CLASS_MAPPINGS["AtelierLoraLoaderModelOnly"]()
    assert node.run(model="M", lora="subj/v2/alice", strength_model=1.0) == (("patched", "M"), "")
    model, clip, _weights, strength_model, strength_clip = loader.calls[1][1]
    assert (model, clip, strength_model, strength_clip) == ("M", None, 1.0, 0.0)


def test_zero_strengths_load_nothing(loader: Loader) -> None:
    result = comfy_runtime.apply_lora("M", "C", "subj/v1/alice (trigger: ohwx alice)", 0, 0)
    assert result == ("M", "C", "ohwx alice")
    assert loader.calls == []


def test_a_plain_loras_file_name_works_too(loader: Loader) -> None:
    """What ``AtelierLoraInput`` passes on: any file of the loras list, with the trigger word it carries."""
    assert comfy_runtime.apply_lora("M", "C", "other.safetensors", 1.0, 1.0)[2] == "inkwash"
    assert comfy_runtime.apply_lora("M", "C", "subj/v1/alice.safetensors", 1.0, 1.0)[2] == "ohwx alice"


@pytest.mark.usefixtures("loader")
def test_an_unknown_lora_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in ComfyUI's loras folders"):
        comfy_runtime.apply_lora("M", "C", "subj/v9/alice (trigger: ohwx alice)", 1.0, 1.0)


@pytest.mark.usefixtures("folders")
def test_older_comfyui_without_lora_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    old = Loader(with_metadata=False)
    for name, module in old.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    assert comfy_runtime.apply_lora("M", "C", "subj/v2/alice", 1.0, 0.5)[:2] == (("patched", "M"), ("patched", "C"))
    assert [call[2] for call in old.calls] == [{"safe_load": True}, {}]


def test_input_images_are_listed_from_the_input_folder(folders: FolderPaths) -> None:
    (folders.root / "input").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (folders.root / "input" / name).write_bytes(b"x")
    (folders.root / "input/sub").mkdir()
    assert comfy_runtime.input_images() == ["a.jpg", "b.png"]
    assert comfy_runtime.folder_files("checkpoints") == ["base.safetensors"]
