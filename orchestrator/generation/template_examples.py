# SPDX-License-Identifier: Apache-2.0
"""A template's example graphs as GET /v1/templates/{name} shows them: marked, editable, registrable as they are.

The example is built for a model the backends offer (the first offered checkpoint of the family, or for Flux
the first catalog entry of that family), else for a named default. Each request field then gets a parameter
marker of our node pack (:func:`comfy_workflows.marking.mark_fields`), so the graph opened in ComfyUI's editor
shows what a request may set, and registering it back unchanged (``POST /v1/templates``) gives a template
with the same request fields. The editor format is built from a ready backend's ``/object_info`` with the
node definitions the service ships filling in (:mod:`comfy_workflows.known_nodes`), so it is there even when
no backend is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from comfy_workflows.known_nodes import with_known_nodes
from comfy_workflows.marking import MarkedGraph, mark_fields
from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.templates import BaseModelSpec, Template
from comfy_workflows.ui_format import UIFormatError, api_to_ui
from orchestrator.errors import AtelierError
from orchestrator.generation.generation_services import GenerationServices

log = logging.getLogger(__name__)

DEFAULT_EXAMPLE_MODELS: dict[str, tuple[str, BaseModelSpec]] = {
    "sd15": ("sd15-base.safetensors", BaseModelSpec(family="sd15", checkpoint="sd15-base.safetensors")),
    "sdxl": ("sdxl-base.safetensors", BaseModelSpec(family="sdxl", checkpoint="sdxl-base.safetensors")),
    "flux": (
        "flux-dev",
        BaseModelSpec(
            family="flux",
            unet="flux1-dev.safetensors",
            clip_l="clip_l.safetensors",
            t5xxl="t5xxl_fp16.safetensors",
            vae="ae.safetensors",
        ),
    ),
}
"""The example's model where the backends offer none of the family (the name is what ``base_model`` says)."""


async def offered(services: GenerationServices, folder: str, refresh: bool = False) -> dict[str, list[str]]:
    """Model file name -> the backends offering it (empty without backends)."""
    if services.comfy is None:
        return {}
    by_name: dict[str, list[str]] = {}
    for url, names in (await services.comfy.pool.offered_models(folder, refresh=refresh)).items():
        for name in names:
            by_name.setdefault(name, []).append(url)
    return dict(sorted(by_name.items()))


async def example_model(services: GenerationServices, family: str) -> tuple[str, BaseModelSpec]:
    """``(base_model name, files)`` for an example of ``family``: offered by the backends where possible."""
    if family == "flux":
        for name, (spec, _description) in sorted(services.catalog.entries().items()):
            if spec.family == "flux":
                return name, spec
        return DEFAULT_EXAMPLE_MODELS[family]
    for name in await offered(services, "checkpoints"):
        found, _source = await services.catalog.checkpoint_family(name)
        if (found or "sd15") == family:
            return name, BaseModelSpec(family=family, checkpoint=name)
    return DEFAULT_EXAMPLE_MODELS[family]


async def editor_object_info(services: GenerationServices) -> ObjectInfo:
    """A ready backend's ``/object_info`` with the known definitions filling in; the known ones alone when no
    backend answers."""
    if services.comfy is None:
        return with_known_nodes(None)
    checker = services.comfy.checker
    try:
        return with_known_nodes(await checker.info(checker.ready_backends()[0]))
    except AtelierError as exc:
        log.info("template graphs from the known node definitions: %s", exc.detail)
        return with_known_nodes(None)


@dataclass(frozen=True)
class ExampleGraphs:
    """A template's example: the request, the marked API graph, and the editor graph (or why there is none)."""

    example: dict[str, Any]
    marked: MarkedGraph
    ui_graph: dict[str, Any] | None
    ui_graph_unavailable: str | None


def editor_graph(graph: dict[str, Any], info: ObjectInfo) -> tuple[dict[str, Any] | None, str | None]:
    """``graph`` in the editor's format, or None and why."""
    try:
        return api_to_ui(graph, info), None
    except UIFormatError as exc:
        return None, str(exc)


async def example_graphs(services: GenerationServices, template: Template, family: str) -> ExampleGraphs:
    """The template's example for ``family`` with its fields marked, in both formats."""
    name, spec = await example_model(services, family)
    example = {**template.example, "base_model": name}
    built = template.build(template.parse(example), spec, filename_prefix="atelier/example", seed_source=lambda: 0)
    info = await editor_object_info(services)
    marked = mark_fields(built, template.request_model, info)
    ui_graph, why = editor_graph(marked.graph, info)
    return ExampleGraphs(example, marked, ui_graph, why)
