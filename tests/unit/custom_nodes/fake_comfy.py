"""Stand-ins for the parts of ComfyUI's API the node pack touches, nothing more.

``comfy_api.latest`` (``io`` and ``ComfyExtension``), ``folder_paths``, ``comfy.utils.load_torch_file`` and
``comfy.sd.load_lora_for_models``. The engines test (tests/engines/test_custom_nodes_engine.py) runs the
same pack in a real ComfyUI.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import importlib.util
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACK = Path(__file__).resolve().parents[3] / "custom_nodes" / "atelier_nodes"


class Recorded:
    """An ``io.X.Input``/``io.X.Output`` stand-in that keeps what it was made with."""

    io_type: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    @property
    def id(self) -> Any:
        """The input or output id."""
        return self.args[0] if self.args else self.kwargs.get("id")


def comfy_type(io_type: Any) -> type:
    """A stand-in for an ``io`` type (``io.Int``...) with ``Input`` and ``Output``."""
    members = {"io_type": io_type}
    return type(
        f"Fake{io_type}",
        (),
        {
            **members,
            "Input": type("Input", (Recorded,), dict(members)),
            "Output": type("Output", (Recorded,), dict(members)),
        },
    )


@dataclass
class Schema:
    """``io.Schema`` (the fields the pack sets)."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    description: str = ""
    search_aliases: list[str] = field(default_factory=list)


@dataclass
class OldSchema:
    """``io.Schema`` of an install from before ``search_aliases``."""

    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    description: str = ""


class NodeOutput:
    """``io.NodeOutput``."""

    def __init__(self, *args: Any) -> None:
        self.args = args


class ComfyNode:
    """``io.ComfyNode``."""


class ComfyExtension(abc.ABC):
    """``comfy_api.latest.ComfyExtension``."""

    async def on_load(self) -> None:
        """Nothing to do."""
        return None

    @abc.abstractmethod
    async def get_node_list(self) -> list[Any]:
        """The extension's nodes."""


class UploadType(enum.StrEnum):
    image = "image_upload"


class FolderType(enum.StrEnum):
    input = "input"


def make_io(missing: Sequence[str] = (), *, old_schema: bool = False) -> types.ModuleType:
    """A ``comfy_api.latest.io`` stand-in; ``missing`` names are left out (an older, incomplete API)."""
    io = types.ModuleType("comfy_api.latest.io")
    members: dict[str, Any] = {
        "ComfyNode": ComfyNode,
        "Schema": OldSchema if old_schema else Schema,
        "NodeOutput": NodeOutput,
        "Custom": comfy_type,
        "UploadType": UploadType,
        "FolderType": FolderType,
    }
    for name in ("Model", "Clip", "Image", "Mask", "String", "Int", "Float", "Combo"):
        members[name] = comfy_type(name.upper())
    for name, member in members.items():
        if name not in missing:
            setattr(io, name, member)
    return io


def comfy_api_modules(io: types.ModuleType | None) -> dict[str, types.ModuleType]:
    """``comfy_api`` and ``comfy_api.latest`` modules offering ``io`` and ``ComfyExtension``."""
    package = types.ModuleType("comfy_api")
    package.__path__ = []
    latest = types.ModuleType("comfy_api.latest")
    latest.ComfyExtension = ComfyExtension  # type: ignore[attr-defined]
    if io is not None:
        latest.io = io  # type: ignore[attr-defined]
    package.latest = latest  # type: ignore[attr-defined]
    return {"comfy_api": package, "comfy_api.latest": latest}


@dataclass
class FolderPaths:
    """``folder_paths``: model folders under ``root`` (``root/<folder>/...``) and an input folder."""

    root: Path
    lists: dict[str, list[str]] = field(default_factory=dict)

    def module(self) -> types.ModuleType:
        """This stand-in as the ``folder_paths`` module."""
        module = types.ModuleType("folder_paths")
        module.get_filename_list = self.get_filename_list  # type: ignore[attr-defined]
        module.get_full_path = self.get_full_path  # type: ignore[attr-defined]
        module.get_input_directory = self.get_input_directory  # type: ignore[attr-defined]
        module.filter_files_content_types = self.filter_files_content_types  # type: ignore[attr-defined]
        module.get_folder_paths = self.get_folder_paths  # type: ignore[attr-defined]
        module.get_user_directory = self.get_user_directory  # type: ignore[attr-defined]
        return module

    def get_folder_paths(self, folder: str) -> list[str]:
        return [str(self.root / folder)]

    def get_user_directory(self) -> str:
        return str(self.root / "user")

    def get_filename_list(self, folder: str) -> list[str]:
        if folder in self.lists:
            return list(self.lists[folder])
        base = self.root / folder
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def get_full_path(self, folder: str, name: str) -> str | None:
        path = self.root / folder / name
        return str(path) if path.is_file() else None

    def get_input_directory(self) -> str:
        (self.root / "input").mkdir(parents=True, exist_ok=True)
        return str(self.root / "input")

    @staticmethod
    def filter_files_content_types(files: list[str], content_types: list[str]) -> list[str]:
        assert content_types == ["image"]
        return [name for name in files if name.endswith((".png", ".jpg", ".webp"))]


@dataclass
class Loader:
    """``comfy.utils.load_torch_file`` and ``comfy.sd.load_lora_for_models``, recording their calls."""

    with_metadata: bool = True
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def modules(self) -> dict[str, types.ModuleType]:
        """``comfy``, ``comfy.utils`` and ``comfy.sd``."""
        comfy, utils, sd = (types.ModuleType(n) for n in ("comfy", "comfy.utils", "comfy.sd"))
        comfy.__path__ = []
        if self.with_metadata:
            utils.load_torch_file = self.load_torch_file  # type: ignore[attr-defined]
            sd.load_lora_for_models = self.load_lora_for_models  # type: ignore[attr-defined]
        else:
            utils.load_torch_file = self.old_load_torch_file  # type: ignore[attr-defined]
            sd.load_lora_for_models = self.old_load_lora_for_models  # type: ignore[attr-defined]
        comfy.utils, comfy.sd = utils, sd  # type: ignore[attr-defined]
        return {"comfy": comfy, "comfy.utils": utils, "comfy.sd": sd}

    def load_torch_file(
        self, ckpt: str, safe_load: bool = False, device: Any = None, return_metadata: bool = False
    ) -> Any:
        self.calls.append(("load", (ckpt,), {"safe_load": safe_load, "return_metadata": return_metadata}))
        weights = {"weights-of": ckpt}
        return (weights, {"from": "file"}) if return_metadata else weights

    def old_load_torch_file(self, ckpt: str, safe_load: bool = False, device: Any = None) -> Any:
        self.calls.append(("load", (ckpt,), {"safe_load": safe_load}))
        return {"weights-of": ckpt}

    def load_lora_for_models(
        self, model: Any, clip: Any, lora: Any, strength_model: float, strength_clip: float, lora_metadata: Any = None
    ) -> tuple[Any, Any]:
        self.calls.append(
            ("apply", (model, clip, lora, strength_model, strength_clip), {"lora_metadata": lora_metadata})
        )
        return ("patched", model), ("patched", clip)

    def old_load_lora_for_models(
        self, model: Any, clip: Any, lora: Any, strength_model: float, strength_clip: float
    ) -> tuple[Any, Any]:
        self.calls.append(("apply", (model, clip, lora, strength_model, strength_clip), {}))
        return ("patched", model), ("patched", clip)


class LoadImage:
    """``nodes.LoadImage``: what the image marker borrows (files under ``folder``)."""

    folder = Path("/nonexistent")

    def load_image(self, image: str) -> tuple[str, str]:
        return f"IMAGE of {image}", f"MASK of {image}"

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:
        return f"hash of {(cls.folder / image).read_bytes()!r}"

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:
        return True if (cls.folder / image).is_file() else f"Invalid image file: {image}"


def nodes_module(input_folder: Path) -> types.ModuleType:
    """ComfyUI's ``nodes`` module, as far as the pack uses it."""
    module = types.ModuleType("nodes")
    module.LoadImage = type("LoadImage", (LoadImage,), {"folder": input_folder})  # type: ignore[attr-defined]
    return module


@contextmanager
def loaded_pack(name: str, modules: Mapping[str, types.ModuleType | None]) -> Iterator[types.ModuleType]:
    """The pack imported as ComfyUI imports a custom node folder, under module name ``name``, with ``modules``
    (None = not importable) in ``sys.modules`` meanwhile; everything is taken out again afterwards."""
    saved = {key: sys.modules.get(key) for key in modules}
    sys.modules.update(modules)  # type: ignore[arg-type]
    try:
        spec = importlib.util.spec_from_file_location(name, PACK / "__init__.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        yield module
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


def schema_fields(schema: Any) -> dict[str, Any]:
    """The fields of a stand-in ``Schema``."""
    return {f.name: getattr(schema, f.name) for f in dataclasses.fields(schema)}
