# SPDX-License-Identifier: Apache-2.0
"""The service's view of installed engines: settings that point at them, unless configured otherwise.

With ``ATELIER_ENGINES=installed`` (the default) a complete install in the engines folder (``ATELIER_ENGINES_DIR``,
``<var_dir>/engines`` by default) is used
when nothing else is configured for that engine: ComfyUI is then launched and supervised from it (as with
``ATELIER_COMFYUI_DIR``/``_PYTHON``), and sd-scripts trains from it (as with ``ATELIER_SD_SCRIPTS_DIR``/
``_PYTHON``, its tokenizer cache included). Engines installed with the CPU build of torch run with
``--cpu`` and train on the CPU unless those settings were given. ``ATELIER_ENGINES=external`` ignores installs.
"""

from __future__ import annotations

from typing import Any

from orchestrator.engines.layout import installed
from orchestrator.settings import Settings, engines_root


def with_installed_engines(settings: Settings) -> Settings:
    """``settings`` completed with the installed engines (unchanged when none applies)."""
    if settings.engines == "external":
        return settings
    given = settings.model_fields_set
    update: dict[str, Any] = {}
    comfy = installed(engines_root(settings), "comfyui")
    if comfy is not None and not settings.comfyui_urls and settings.comfyui_dir is None:
        update.update(comfyui_dir=comfy.src, comfyui_python=comfy.python)
        if "comfyui_cpu" not in given and (comfy.manifest() or {}).get("torch") == "cpu":
            update["comfyui_cpu"] = True
    sd = installed(engines_root(settings), "sd-scripts")
    if sd is not None and settings.sd_scripts_dir is None:
        update.update(sd_scripts_dir=sd.src, sd_scripts_python=sd.python)
        if settings.sd_scripts_tokenizer_cache_dir is None:
            update["sd_scripts_tokenizer_cache_dir"] = sd.tokenizers
        if "training_cpu" not in given and (sd.manifest() or {}).get("torch") == "cpu":
            update["training_cpu"] = True
    return settings.model_copy(update=update) if update else settings


def engines_missing(settings: Settings) -> list[str]:
    """The engines this process would use but has neither configured nor installed."""
    if settings.engines == "external":
        return []
    missing = []
    if (
        not settings.comfyui_urls
        and settings.comfyui_dir is None
        and installed(engines_root(settings), "comfyui") is None
    ):
        missing.append("comfyui")
    if settings.sd_scripts_dir is None and installed(engines_root(settings), "sd-scripts") is None:
        missing.append("sd-scripts")
    return missing
