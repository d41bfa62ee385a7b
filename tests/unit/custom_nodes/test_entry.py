"""Entry style: V3 ``comfy_entrypoint`` where ComfyUI's typed API is usable, else the classic mappings; never both."""

from __future__ import annotations

import importlib.abc
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from custom_nodes.atelier_nodes.vocabulary import ANY_COMBO, NODE_IDS, ComboAny
from tests.unit.custom_nodes import fake_comfy
from tests.unit.custom_nodes.fake_comfy import (
    ComfyExtension,
    ComfyNode,
    FolderPaths,
    comfy_api_modules,
    loaded_pack,
    make_io,
)
from tests.unit.custom_nodes.safetensors_files import atelier_metadata, write_safetensors

V3_EXPORTS = {"comfy_entrypoint"}
CLASSIC_EXPORTS = {"NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"}


@pytest.fixture
def folders(tmp_path: Path) -> FolderPaths:
    """A ComfyUI folder layout with one Atelier LoRA, one checkpoint and one input image."""
    write_safetensors(tmp_path / "loras/subj/v1/alice.safetensors", atelier_metadata(trigger="ohwx alice"))
    write_safetensors(tmp_path / "checkpoints/base.safetensors")
    (tmp_path / "input").mkdir()
    (tmp_path / "input/cat.png").write_bytes(b"png")
    (tmp_path / "input/notes.txt").write_text("not an image")
    return FolderPaths(tmp_path)


def exports(pack: ModuleType) -> set[str]:
    return {name for name in (*V3_EXPORTS, *CLASSIC_EXPORTS) if hasattr(pack, name)}


def test_classic_style_where_comfy_api_is_missing() -> None:
    with loaded_pack("atelier_pack_no_api", {"comfy_api": None, "comfy_api.latest": None}) as pack:
        assert exports(pack) == CLASSIC_EXPORTS
        assert list(pack.NODE_CLASS_MAPPINGS) == list(NODE_IDS)
        assert pack.WEB_DIRECTORY == "./web"
        assert pack.NODE_DISPLAY_NAME_MAPPINGS["AtelierLoraLoader"] == "Atelier LoRA Loader"


@pytest.mark.parametrize("missing", [("Custom",), ("Combo", "UploadType"), ("Schema",), ("Mask",)])
def test_classic_style_where_the_v3_api_lacks_what_the_pack_uses(
    missing: Sequence[str], caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO),
        loaded_pack("atelier_pack_old_api", comfy_api_modules(make_io(missing))) as pack,
    ):
        assert exports(pack) == CLASSIC_EXPORTS
    assert f"using the classic node style: comfy_api.latest lacks {', '.join(missing)}" in caplog.text


def test_classic_style_where_comfy_api_latest_has_no_io() -> None:
    with loaded_pack("atelier_pack_no_io", comfy_api_modules(None)) as pack:
        assert exports(pack) == CLASSIC_EXPORTS


class _BrokenFinder(importlib.abc.MetaPathFinder):
    """Makes importing ``comfy_api.latest`` fail the way a broken install does (not with ImportError)."""

    def __init__(self) -> None:
        self.asked = 0

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname == "comfy_api.latest":
            self.asked += 1
            raise RuntimeError("torch failed to initialise")
        return None


@pytest.fixture
def broken_comfy_api() -> Iterator[_BrokenFinder]:
    finder = _BrokenFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)


def test_classic_style_where_importing_comfy_api_fails(broken_comfy_api: _BrokenFinder) -> None:
    assert "comfy_api.latest" not in sys.modules
    package = comfy_api_modules(make_io())["comfy_api"]
    with loaded_pack("atelier_pack_broken_api", {"comfy_api": package}) as pack:
        assert exports(pack) == CLASSIC_EXPORTS
    assert broken_comfy_api.asked == 1


def test_classic_style_when_the_v3_nodes_fail_to_build(caplog: pytest.LogCaptureFixture) -> None:
    io = make_io()

    def failing_custom(io_type: Any) -> type:
        raise TypeError("Custom() changed")

    io.Custom = failing_custom  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING), loaded_pack("atelier_pack_v3_fails", comfy_api_modules(io)) as pack:
        assert exports(pack) == CLASSIC_EXPORTS
    assert "the V3 nodes failed to load" in caplog.text


async def test_v3_style_where_the_api_is_usable(folders: FolderPaths) -> None:
    modules = {**comfy_api_modules(make_io()), "folder_paths": folders.module()}
    with loaded_pack("atelier_pack_v3", modules) as pack:
        assert exports(pack) == V3_EXPORTS
        extension = await pack.comfy_entrypoint()
        assert isinstance(extension, ComfyExtension)
        nodes = await extension.get_node_list()
        assert all(issubclass(node, ComfyNode) for node in nodes)
        schemas = {node.__name__: node.define_schema() for node in nodes}
    assert list(schemas) == list(NODE_IDS)
    assert [schema.node_id for schema in schemas.values()] == list(NODE_IDS)
    assert all(node_id.startswith("Atelier") for node_id in NODE_IDS)


async def _v3_schemas(folders: FolderPaths) -> dict[str, Any]:
    modules = {**comfy_api_modules(make_io()), "folder_paths": folders.module()}
    with loaded_pack("atelier_pack_v3_schemas", modules) as pack:
        nodes = await (await pack.comfy_entrypoint()).get_node_list()
        return {node.__name__: (node, node.define_schema()) for node in nodes}


async def test_v3_lora_loader_schema(folders: FolderPaths) -> None:
    _, schema = (await _v3_schemas(folders))["AtelierLoraLoader"]
    assert [(i.id, i.io_type) for i in schema.inputs] == [
        ("model", "MODEL"),
        ("clip", "CLIP"),
        ("lora", "COMBO"),
        ("strength_model", "FLOAT"),
        ("strength_clip", "FLOAT"),
    ]
    assert schema.inputs[2].kwargs["options"] == ["subj/v1/alice (trigger: ohwx alice)"]
    assert schema.inputs[3].kwargs | {"tooltip": None} == {
        "default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01, "tooltip": None,
    }  # fmt: skip
    assert [(o.id, o.io_type, o.kwargs["display_name"]) for o in schema.outputs] == [
        ("model", "MODEL", "MODEL"),
        ("clip", "CLIP", "CLIP"),
        ("trigger_word", "STRING", "trigger_word"),
    ]
    assert schema.search_aliases == ["atelier lora", "lora atelier", "trigger word"]
    assert schema.category == "Atelier"


async def test_v3_marker_schemas(folders: FolderPaths) -> None:
    schemas = await _v3_schemas(folders)
    _, seed = schemas["AtelierSeedInput"]
    assert seed.inputs[1].kwargs["control_after_generate"] is True
    assert seed.inputs[1].kwargs["max"] == 2**64 - 1
    image_node, image = schemas["AtelierImageInput"]
    assert image.inputs[1].kwargs["options"] == ["cat.png"]
    assert image.inputs[1].kwargs["upload"] == fake_comfy.UploadType.image
    assert [(o.id, o.io_type) for o in image.outputs] == [("image", "IMAGE"), ("mask", "MASK")]
    assert {"fingerprint_inputs", "validate_inputs"} <= set(vars(image_node))
    _, checkpoint = schemas["AtelierCheckpointInput"]
    assert checkpoint.inputs[1].kwargs["options"] == ["base.safetensors"]
    output_type = checkpoint.outputs[0].io_type
    assert type(output_type).__name__ == ComboAny.__name__  # the freshly loaded pack's own class
    assert output_type == "COMBO"
    assert not output_type != ["base.safetensors"]  # noqa: SIM202 - ComfyUI compares types with !=
    _, integer = schemas["AtelierIntInput"]
    assert [(i.id, i.io_type, i.kwargs.get("optional", False)) for i in integer.inputs] == [
        ("name", "STRING", False),
        ("value", "INT", False),
        ("min", "INT", False),
        ("max", "INT", False),
        ("description", "STRING", True),
    ]


async def test_v3_markers_pass_their_value_through(folders: FolderPaths) -> None:
    schemas = await _v3_schemas(folders)
    steps, _ = schemas["AtelierIntInput"]
    assert steps.execute(name="steps", value=5, min=1, max=10).args == (5,)
    with pytest.raises(ValueError, match="outside"):
        steps.execute(name="steps", value=11, min=1, max=10)
    prompt, _ = schemas["AtelierPromptInput"]
    assert prompt.execute(name="prompt", text="a cat").args == ("a cat",)


def test_classic_style_on_an_install_before_search_aliases(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO),
        loaded_pack("atelier_pack_old_schema", comfy_api_modules(make_io(old_schema=True))) as pack,
    ):
        assert exports(pack) == CLASSIC_EXPORTS
    assert "comfy_api.latest lacks Schema(search_aliases)" in caplog.text


def test_the_any_combo_type() -> None:
    assert not ANY_COMBO != ["a.safetensors", "b.safetensors"]  # noqa: SIM202 - ComfyUI compares with !=
    assert not ANY_COMBO != "COMBO"  # noqa: SIM202
    assert ANY_COMBO != "MODEL"
    assert ANY_COMBO != 3
    assert ANY_COMBO == "COMBO"
    assert hash(ANY_COMBO) == hash("COMBO")
    assert json.dumps([ANY_COMBO]) == '["COMBO"]'


async def test_v3_remote_loader_and_choice_marker(folders: FolderPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATELIER_URL", raising=False)
    modules = {**comfy_api_modules(make_io()), "folder_paths": folders.module()}
    with loaded_pack("atelier_pack_v3_remote", modules) as pack:
        nodes = {node.__name__: node for node in await (await pack.comfy_entrypoint()).get_node_list()}
        remote = nodes["AtelierRemoteLoraLoader"].define_schema()
        problem = nodes["AtelierRemoteLoraLoader"].validate_inputs("alice/alice/v1")
        choice = nodes["AtelierChoiceInput"].define_schema()
        chosen = nodes["AtelierChoiceInput"].execute(name="sampler", value="euler").args
    assert [(i.id, i.io_type, i.kwargs.get("optional", False)) for i in remote.inputs] == [
        ("model", "MODEL", False),
        ("clip", "CLIP", True),
        ("lora", "COMBO", False),
        ("strength_model", "FLOAT", False),
        ("strength_clip", "FLOAT", False),
    ]
    assert remote.inputs[2].kwargs["options"] == []  # no server set, nothing cached
    assert "validate_inputs" in vars(nodes["AtelierRemoteLoraLoader"])  # ComfyUI leaves the lora value to it
    assert (
        problem == "alice/alice/v1 is not in the local cache, and no LoRA Atelier server is set: enter its "
        "address and an API key in the Atelier sidebar (or set ATELIER_URL and ATELIER_API_KEY for ComfyUI)"
    )
    assert [i.id for i in choice.inputs] == ["name", "value", "description"]
    assert choice.outputs[0].io_type == "COMBO"
    assert chosen == ("euler",)
