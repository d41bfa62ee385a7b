# SPDX-License-Identifier: Apache-2.0
"""/v1/templates (input schema, example graphs in API and editor format), /v1/backends and /v1/models."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from comfy_workflows.registration import RegisteredTemplate
from comfy_workflows.templates import Template, UnknownTemplateError, get_template, list_templates
from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE
from orchestrator.errors import NotFound
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
from orchestrator.generation.template_examples import editor_graph, editor_object_info, example_graphs, offered

router = Router()
BODIES: dict[str, type[BaseModel]] = {"txt2img": Txt2ImgBody, "img2img": Img2ImgBody}


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
    """The template's example built for ``family`` (sd15, sdxl or flux, on a model the backends offer) as an API
    graph and an editor graph, a parameter marker of the node pack wired in for each request field: open
    ``ui_graph`` in ComfyUI, change it, and register either graph back with POST /v1/templates."""
    query = parse_query(request, TemplateQuery)
    try:
        template = get_template(request.match_info["name"])
    except UnknownTemplateError as exc:
        saved = await load_template(request.app[ENGINE], request[OWNER], request.match_info["name"])
        if saved is None:
            raise NotFound(str(exc.args[0])) from exc
        return json_response(await _registered_detail(request.app[GENERATION], saved))
    graphs = await example_graphs(request.app[GENERATION], template, query.family)
    detail = TemplateDetail(
        **_summary(template).model_dump(),
        example=graphs.example,
        family=query.family,
        api_graph=graphs.marked.graph,
        ui_graph=graphs.ui_graph,
        ui_graph_unavailable=graphs.ui_graph_unavailable,
        field_map=[{"node": n, "input": i, "field": f} for (n, i), f in graphs.marked.field_map.items()],
        unmarked_fields=graphs.marked.unmarked,
    )
    return json_response(detail)


async def _registered_detail(services: GenerationServices, template: RegisteredTemplate) -> TemplateDetail:
    ui_graph, why = editor_graph(template.graph, await editor_object_info(services))
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
    return json_response(BackendList(configured=services.comfy is not None, items=services.backend_states()))


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
    for name, backends in (await offered(services, "checkpoints", refresh)).items():
        family, source = await services.catalog.checkpoint_family(name)
        checkpoints.append({"name": name, "family": family, "family_source": source, "backends": backends})
    catalog = [
        {"name": name, "family": spec.family, "files": spec.model_dump(exclude_none=True, exclude={"family"}),
         "description": description}
        for name, (spec, description) in sorted(services.catalog.entries().items())
    ]  # fmt: skip
    offered_loras = await offered(services, "loras", refresh)
    mine = await owner_lora_files(engine, owner)
    foreign = await foreign_lora_files(engine, owner, set(offered_loras))
    loras = [
        {"name": name, "backends": backends, "registry": mine.get(name)}
        for name, backends in offered_loras.items()
        if name not in foreign
    ]
    return json_response(ModelList(checkpoints=checkpoints, catalog=catalog, loras=loras))
