# SPDX-License-Identifier: Apache-2.0
"""The pack's calls into ComfyUI: folder lists for combos; LoRAs and images loaded by ComfyUI's own functions.

Every ComfyUI module is imported inside the function that needs it, so this module imports anywhere; the
functions themselves run only inside ComfyUI. Signatures that changed between ComfyUI releases (LoRA
metadata support) are checked before use, so that older installs work too. The remote loader's cache lives in
the first of ComfyUI's ``loras`` folders (``<loras>/atelier``), its settings in ComfyUI's user directory.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from .atelier_connection import Connection, load_connection
from .lora_catalog import AtelierLora, HeaderCache, catalog, entries, key_of, resolve
from .lora_metadata import lora_info
from .remote_client import AtelierServerError
from .remote_loras import RemoteLoras

_HEADERS = HeaderCache()
"""Header metadata of the LoRA files seen so far, shared by every node (read again when a file changes)."""

REMOTE_CACHE_FOLDER = "atelier"


def user_directory() -> Path | None:
    """ComfyUI's user directory (where the pack keeps its settings), None where it has none."""
    import folder_paths  # ComfyUI

    get = getattr(folder_paths, "get_user_directory", None)
    return Path(get()) if get is not None else None


def connection() -> Connection | None:
    """The LoRA Atelier server to use now (environment, else the sidebar's settings)."""
    return load_connection(os.environ, user_directory())


def remote_cache_root() -> Path:
    """``<first loras folder>/atelier``: where the remote loader keeps its downloads."""
    import folder_paths  # ComfyUI

    return Path(folder_paths.get_folder_paths("loras")[0]) / REMOTE_CACHE_FOLDER


REMOTE = RemoteLoras(remote_cache_root, connection)
"""The remote loader's list, cache and downloads, shared by the node and the sidebar's routes."""


def _locate_lora(name: str) -> Path | None:
    import folder_paths  # ComfyUI

    path = folder_paths.get_full_path("loras", name)
    return Path(path) if path else None


def atelier_loras() -> list[AtelierLora]:
    """The Atelier LoRAs in ComfyUI's ``loras`` folders (all configured paths, extra_model_paths included)."""
    import folder_paths  # ComfyUI

    return catalog(folder_paths.get_filename_list("loras"), _locate_lora, _HEADERS)


def input_images() -> list[str]:
    """The image files in ComfyUI's input folder (the image marker's options)."""
    import folder_paths  # ComfyUI

    folder = folder_paths.get_input_directory()
    files = [name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))]
    only_images = getattr(folder_paths, "filter_files_content_types", None)  # absent in older installs
    return sorted(only_images(files, ["image"]) if only_images is not None else files)


def folder_files(folder: str) -> list[str]:
    """The files ComfyUI lists for a model folder (``checkpoints``, ``loras``...)."""
    import folder_paths  # ComfyUI

    return list(folder_paths.get_filename_list(folder))


def atelier_lora_entries() -> list[str]:
    """The LoRA loader's options: the Atelier LoRAs in ComfyUI's ``loras`` folders, with trigger words."""
    return entries(atelier_loras())


def remote_lora_entries() -> list[str]:
    """The remote loader's options: your LoRAs on the server, and the cached ones."""
    return REMOTE.entries()


def remote_lora_problem(entry: str) -> bool | str:
    """True when the remote loader can load ``entry``, else the reason (shown on the node)."""
    return REMOTE.problem(entry)


def find_lora(value: str) -> AtelierLora:
    """The LoRA a node's value names: an Atelier combo entry, or any file of the ``loras`` list."""
    found = resolve(value, atelier_loras())
    if found is not None:
        return found
    path = _locate_lora(value)
    if path is None:
        raise ValueError(f"LoRA {value!r} is not in ComfyUI's loras folders")
    return AtelierLora(value, key_of(value), lora_info(_HEADERS.metadata(path) or {}))


def _accepts(function: Any, parameter: str) -> bool:
    try:
        return parameter in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def apply_lora(model: Any, clip: Any, value: str, strength_model: float, strength_clip: float) -> tuple[Any, Any, str]:
    """``(model, clip, trigger word)`` with the LoRA named by ``value`` applied, as ComfyUI's LoraLoader does.

    ``clip`` may be None (model only). Nothing is loaded when both strengths are 0.
    """
    lora = find_lora(value)
    trigger = lora.info.trigger_word or ""
    if strength_model == 0 and strength_clip == 0:
        return model, clip, trigger
    path = _locate_lora(lora.relative_name)
    if path is None:
        raise ValueError(f"LoRA file {lora.relative_name!r} has gone from ComfyUI's loras folders")
    new_model, new_clip = _apply_file(model, clip, path, strength_model, strength_clip)
    return new_model, new_clip, trigger


def apply_remote_lora(
    model: Any, clip: Any, entry: str, strength_model: float, strength_clip: float
) -> tuple[Any, Any, str]:
    """``(model, clip, trigger word)`` with the server's LoRA ``entry`` applied (downloaded first if needed).

    Raises ``RuntimeError`` with the reason (refused key, unreachable server, sha256 mismatch) for ComfyUI to
    show on the node.
    """
    try:
        path, trigger = REMOTE.file_for(entry)
    except AtelierServerError as exc:
        raise RuntimeError(f"Atelier Remote LoRA Loader: {exc}") from exc
    if strength_model == 0 and (clip is None or strength_clip == 0):
        return model, clip, trigger
    new_model, new_clip = _apply_file(model, clip, path, strength_model, strength_clip if clip is not None else 0.0)
    return new_model, new_clip, trigger


def _apply_file(model: Any, clip: Any, path: Path, strength_model: float, strength_clip: float) -> tuple[Any, Any]:
    import comfy.sd  # ComfyUI
    import comfy.utils  # ComfyUI

    metadata = None
    if _accepts(comfy.utils.load_torch_file, "return_metadata"):
        weights, metadata = comfy.utils.load_torch_file(str(path), safe_load=True, return_metadata=True)
    else:
        weights = comfy.utils.load_torch_file(str(path), safe_load=True)
    extra = {"lora_metadata": metadata} if _accepts(comfy.sd.load_lora_for_models, "lora_metadata") else {}
    new_model, new_clip = comfy.sd.load_lora_for_models(model, clip, weights, strength_model, strength_clip, **extra)
    return new_model, new_clip


def load_image(name: str) -> tuple[Any, Any]:
    """``(IMAGE, MASK)`` of the input image ``name``, loaded by ComfyUI's own Load Image node."""
    import nodes  # ComfyUI

    image, mask = nodes.LoadImage().load_image(name)
    return image, mask


def image_fingerprint(name: str) -> Any:
    """What tells ComfyUI that the input image ``name`` changed (Load Image's content hash)."""
    import nodes  # ComfyUI

    return nodes.LoadImage.IS_CHANGED(name)


def image_problem(name: str) -> bool | str:
    """True when the input image ``name`` exists, else Load Image's message about it."""
    import nodes  # ComfyUI

    answer: bool | str = nodes.LoadImage.VALIDATE_INPUTS(name)
    return answer
