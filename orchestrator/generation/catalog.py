# SPDX-License-Identifier: Apache-2.0
"""Base models: what a request's ``base_model`` names, resolved to the files ComfyUI loads and their family.

A ``base_model`` is either

* a name in the **model catalog** (``<models_dir>/catalog.yaml`` or ``ATELIER_MODEL_CATALOG``), a YAML
  mapping of names to :class:`~comfy_workflows.templates.BaseModelSpec` fields. This is how a Flux model
  (diffusion model + two text encoders + VAE) or any checkpoint with a known family is declared::

      flux-dev:
        family: flux
        unet: flux1-dev.safetensors        # models/diffusion_models
        clip_l: clip_l.safetensors         # models/text_encoders
        t5xxl: t5xxl_fp16.safetensors      # models/text_encoders
        vae: ae.safetensors                # models/vae
        description: FLUX.1 [dev]
      my-sdxl:
        family: sdxl
        checkpoint: sd_xl_base_1.0.safetensors

* or a **checkpoint file name** as ComfyUI lists it (``sd15-slim-random.safetensors``; the extension may be
  left out when the backend offers the name with ``.safetensors``). Its family is read from the safetensors
  header when the file is in our models store (``<models_dir>/checkpoints``), else guessed from the name
  (``xl`` -> SDXL, otherwise SD1.5). Single-file Flux checkpoints must be declared in the catalog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from comfy_workflows.templates import BaseModelSpec
from orchestrator.modelfiles import family_of, tensor_names

log = logging.getLogger(__name__)

FamilySource = Literal["catalog", "header", "name", "default"]
CHECKPOINT_SUFFIX = ".safetensors"


class UnknownBaseModel(ValueError):
    """``base_model`` cannot be turned into a model spec (the message says why, for the client)."""


class CatalogError(ValueError):
    """The catalog file is not valid."""


@dataclass(frozen=True)
class ResolvedBaseModel:
    """A request's base model: its name, the files to load and where its family came from."""

    name: str
    spec: BaseModelSpec
    family_source: FamilySource
    description: str | None = None

    def as_payload(self) -> dict[str, Any]:
        """JSON for the job payload."""
        return {
            "name": self.name,
            "family": self.spec.family,
            "family_source": self.family_source,
            "spec": self.spec.model_dump(exclude_none=True),
        }


def family_from_name(name: str) -> str | None:
    """A guess from a file name: ``xl`` means SDXL, ``flux`` Flux; None when the name does not say."""
    lowered = name.lower()
    if "flux" in lowered:
        return "flux"
    if "xl" in lowered:
        return "sdxl"
    return None


def load_catalog(path: Path) -> dict[str, tuple[BaseModelSpec, str | None]]:
    """Parse a catalog file: ``{name: (spec, description)}``. Raises CatalogError naming the bad entry."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{path}: the catalog must map model names to their files")
    entries: dict[str, tuple[BaseModelSpec, str | None]] = {}
    for name, fields in raw.items():
        if not isinstance(fields, Mapping):
            raise CatalogError(f"{path}: entry {name!r} must be a mapping")
        fields = dict(fields)
        description = fields.pop("description", None)
        try:
            entries[str(name)] = (BaseModelSpec.model_validate(fields), description)
        except ValidationError as exc:
            raise CatalogError(f"{path}: entry {name!r}: {exc.errors()[0]['msg']}") from exc
    return entries


class ModelCatalog:
    """Resolves ``base_model`` names; re-reads the catalog file when it changes."""

    def __init__(self, models_dir: Path, catalog_path: Path | None = None) -> None:
        self.models_dir = models_dir
        self.path = catalog_path or models_dir / "catalog.yaml"
        self._entries: dict[str, tuple[BaseModelSpec, str | None]] = {}
        self._stamp: tuple[int, int] | None = None
        self._families: dict[tuple[str, int, int], str | None] = {}
        self.reload()

    def reload(self) -> None:
        """Read the catalog file if it changed; a broken file keeps the previous entries (and is logged)."""
        try:
            stat = self.path.stat()
        except OSError:
            self._entries, self._stamp = {}, None
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            self._entries = load_catalog(self.path)
        except CatalogError as exc:
            log.error("model catalog not (re)loaded: %s", exc)
        self._stamp = stamp

    def entries(self) -> dict[str, tuple[BaseModelSpec, str | None]]:
        """Every catalog entry, current."""
        self.reload()
        return dict(self._entries)

    async def checkpoint_family(self, name: str) -> tuple[str | None, FamilySource]:
        """The family of checkpoint file ``name``: from its header when in our store, else from its name."""
        path = self.models_dir / "checkpoints" / name
        if ".." not in Path(name).parts:
            try:
                stat = path.stat()  # one syscall on the local models store: not worth a thread hop
            except OSError:
                stat = None
            if stat is not None:
                key = (name, stat.st_mtime_ns, stat.st_size)
                if key not in self._families:
                    names = await asyncio.to_thread(tensor_names, path)
                    self._families[key] = family_of(names)
                if self._families[key] is not None:
                    return self._families[key], "header"
        guessed = family_from_name(name)
        return (guessed, "name") if guessed else (None, "default")

    async def resolve(self, name: str, offered_checkpoints: Collection[str] = ()) -> ResolvedBaseModel:
        """The spec for ``name``. ``offered_checkpoints`` (a backend's list) lets ``x`` mean ``x.safetensors``."""
        self.reload()
        if name in self._entries:
            spec, description = self._entries[name]
            return ResolvedBaseModel(name, spec, "catalog", description)
        checkpoint = name
        if name not in offered_checkpoints and name + CHECKPOINT_SUFFIX in offered_checkpoints:
            checkpoint = name + CHECKPOINT_SUFFIX
        family, source = await self.checkpoint_family(checkpoint)
        if family == "flux":
            raise UnknownBaseModel(
                f"{name!r} looks like a Flux model; declare it in the model catalog ({self.path.name}) with its "
                "unet, clip_l, t5xxl and vae files"
            )
        spec = BaseModelSpec(family=family or "sd15", checkpoint=checkpoint)
        return ResolvedBaseModel(name, spec, source)
