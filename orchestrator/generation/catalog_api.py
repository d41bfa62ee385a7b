# SPDX-License-Identifier: Apache-2.0
"""/v1/templates (input schema, example graphs in API and editor format), /v1/backends and /v1/models."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from comfy_workflows.registration import RegisteredTemplate
from comfy_workflows.templates import BaseModelSpec, Template, UnknownTemplateError, get_template, list_templates
from comfy_workflows.ui_format import UIFormatError, api_to_ui
from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE
from orchestrator.errors import AtelierError, NotFound
from orchestrator.generation.generation_services import GENERATION, GenerationServices
from orchestrator.generation.loras import foreign_lora_files
from orchestrator.generation.queries import owner_lora_files
from orchestrator.generation.registered import list_saved, load_template
from orchestrator.generation.registered_api import summary_of
from orchestrator.generation.schemas import (
    BackendList,
    Img2ImgBody,
    ModelList,
    ModelQuery,
    TemplateDetail,
    TemplateList,
    TemplateQuery,
    TemplateSummary,
    Txt2ImgBody,
)

router = Router()
BODIES: dict[str, type[BaseModel]] = {"txt2img": Txt2ImgBody, "img2img": Img2ImgBody}
EXAMPLE_MODELS = {
    "sd15": BaseModelSpec(family="sd15", checkpoint="sd15-base.safetensors"),
    "sdxl": BaseModelSpec(family="sdxl", checkpoint="sdxl-base.safetensors"),
    "flux": BaseModelSpec(
        family="flux",
        unet="flux1-dev.safetensors",
        clip_l="clip_l.safetensors",
        t5xxl="t5xxl_fp16.safetensors",
        vae="ae.safetensors",
    ),
}


def _summary(template: Template) -> TemplateSummary:
    model = BODIES.get(template.name, template.request_model)
    return TemplateSummary(
        name=template.name,
        description=template.description,
        url=f"/v1/templates/{template.name}",
        input_schema=model.model_json_schema(),
    )


@router.route("GET", "/v1/templates", summary="List workflow templates", tag="templates", response=TemplateList)
async def list_all_templates(request: web.Request) -> web.Response:
    """The built-in templates and the ones you registered, each with the JSON schema of its request."""
    saved = await list_saved(request.app[ENGINE], request[OWNER])
    items = [_summary(t) for t in list_templates()]
    items += [summary_of(t.name, t.description, t.input_schema()) for t in saved]
    return json_response(TemplateList(items=items))


async def _ui_graph(services: GenerationServices, graph: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    if services.checker is None:
        return None, "no ComfyUI backend is configured"
    try:
        info = await services.checker.info(services.checker.ready_backends()[0])
        return api_to_ui(graph, info), None
    except AtelierError as exc:
        return None, exc.detail
    except UIFormatError as exc:
        return None, str(exc)


@router.route(
    "GET",
    "/v1/templates/{name}",
    summary="One template: schema, example, graphs",
    tag="templates",
    query=TemplateQuery,
    response=TemplateDetail,
    errors=(404, 422),
)
async def get_one_template(request: web.Request) -> web.Response:
    """The template's example built for ``family`` (sd15, sdxl or flux) as an API graph and an editor graph."""
    query = parse_query(request, TemplateQuery)
    try:
        template = get_template(request.match_info["name"])
    except UnknownTemplateError as exc:
        saved = await load_template(request.app[ENGINE], request[OWNER], request.match_info["name"])
        if saved is None:
            raise NotFound(str(exc.args[0])) from exc
        return json_response(await _registered_detail(request.app[GENERATION], saved))
    spec = EXAMPLE_MODELS[query.family]
    example = {**template.example, "base_model": spec.checkpoint or "flux-dev"}
    built = template.build(template.parse(example), spec, filename_prefix="atelier/example", seed_source=lambda: 0)
    ui_graph, why = await _ui_graph(request.app[GENERATION], built.graph)
    detail = TemplateDetail(
        **_summary(template).model_dump(),
        example=example,
        family=query.family,
        api_graph=built.graph,
        ui_graph=ui_graph,
        ui_graph_unavailable=why,
        field_map=[{"node": n, "input": i, "field": f} for (n, i), f in sorted(built.field_map.items())],
    )
    return json_response(detail)


async def _registered_detail(services: GenerationServices, template: RegisteredTemplate) -> TemplateDetail:
    ui_graph, why = await _ui_graph(services, template.graph)
    defaults = {f.name: f.default for f in template.fields if f.default is not None}
    return TemplateDetail(
        **summary_of(template.name, template.description, template.input_schema()).model_dump(),
        example={"template": template.name, **defaults},
        family=None,
        api_graph=template.graph,
        ui_graph=ui_graph,
        ui_graph_unavailable=why,
        field_map=[{"node": n, "input": i, "field": f} for (n, i), f in sorted(template.field_map().items())],
    )


@router.route("GET", "/v1/backends", summary="ComfyUI backends", tag="backends", response=BackendList)
async def list_backends(request: web.Request) -> web.Response:
    """Health, readiness, load, version and (for local ones) the process of each backend."""
    services = request.app[GENERATION]
    return json_response(BackendList(configured=services.configured, items=services.backend_states()))


async def _offered(services: GenerationServices, folder: str, refresh: bool) -> dict[str, list[str]]:
    """name -> backends offering it."""
    if services.pool is None:
        return {}
    by_name: dict[str, list[str]] = {}
    for url, names in (await services.pool.offered_models(folder, refresh=refresh)).items():
        for name in names:
            by_name.setdefault(name, []).append(url)
    return dict(sorted(by_name.items()))


@router.route(
    "GET",
    "/v1/models",
    summary="Models the backends offer",
    tag="backends",
    query=ModelQuery,
    response=ModelList,
    errors=(401, 422),
)
async def list_models(request: web.Request) -> web.Response:
    """Checkpoints (with family where known), catalog models, and LoRA files (yours named by registry name;
    other owners' registered LoRAs are not listed)."""
    refresh = parse_query(request, ModelQuery).refresh
    services = request.app[GENERATION]
    engine, owner = request.app[ENGINE], request[OWNER]
    checkpoints = []
    for name, backends in (await _offered(services, "checkpoints", refresh)).items():
        family, source = await services.catalog.checkpoint_family(name)
        checkpoints.append({"name": name, "family": family, "family_source": source, "backends": backends})
    catalog = [
        {"name": name, "family": spec.family, "files": spec.model_dump(exclude_none=True, exclude={"family"}),
         "description": description}
        for name, (spec, description) in sorted(services.catalog.entries().items())
    ]  # fmt: skip
    offered_loras = await _offered(services, "loras", refresh)
    mine = await owner_lora_files(engine, owner)
    foreign = await foreign_lora_files(engine, owner, set(offered_loras))
    loras = [
        {"name": name, "backends": backends, "registry": mine.get(name)}
        for name, backends in offered_loras.items()
        if name not in foreign
    ]
    return json_response(ModelList(checkpoints=checkpoints, catalog=catalog, loras=loras))
