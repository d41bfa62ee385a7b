# SPDX-License-Identifier: Apache-2.0
"""Accepting a template request: resolve the base model and LoRAs, build the graph, check it against a ready
backend's ``/object_info``, keep the init image, and describe the job. Nothing is queued when any of it fails;
the 422 names the request field (``base_model``, ``loras[1].lora``, ``steps``), never a node id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from comfy_workflows.templates import BuiltWorkflow, get_template
from comfy_workflows.templates.base import FAMILY_DEFAULTS
from comfy_workflows.validation import ValidationIssue, validate_built
from orchestrator.errors import ValidationFailed
from orchestrator.generation.catalog import ResolvedBaseModel, UnknownBaseModel
from orchestrator.generation.checking import GraphChecker
from orchestrator.generation.content import check_graph, mapped
from orchestrator.generation.generation_services import GenerationServices
from orchestrator.generation.init_images import InitImage, InitImageError, parse_init_image
from orchestrator.generation.loras import ResolvedLoras, resolve_loras
from orchestrator.generation.payload import GenerationPayload, Upload, filename_prefix, storage_prefix
from orchestrator.generation.schemas import Img2ImgBody, Txt2ImgBody
from orchestrator.policy import ContentGate, Context
from orchestrator.storage import Storage

TemplateBody = Txt2ImgBody | Img2ImgBody
_LOADER_CLASSES = frozenset({"CheckpointLoaderSimple", "UNETLoader", "DualCLIPLoader", "VAELoader"})
_DELIVERY_FIELDS = {"priority", "webhook_url"}


def issue_errors(issues: Iterable[ValidationIssue], fallback: str = "template") -> list[dict[str, Any]]:
    """Validation issues of a template graph as ``[{field, reason, type}]`` naming request fields."""
    errors: list[dict[str, Any]] = []
    for issue in issues:
        field = issue.field or ("base_model" if issue.class_type in _LOADER_CLASSES else fallback)
        error = {"field": field, "reason": issue.message, "type": issue.kind.value}
        if error not in errors:
            errors.append(error)
    return errors


def node_fields(built: BuiltWorkflow) -> dict[str, str]:
    """Node id -> the request field it serves (``loras[1]`` for a LoRA loader), for execution errors."""
    fields: dict[str, str] = {}
    for (node_id, _input), path in sorted(built.field_map.items()):
        head = path.split(".")[0]
        if head.startswith("loras[") or head in ("base_model", "init_image"):
            fields.setdefault(node_id, head)
    return fields


def _input(built: BuiltWorkflow, node_id: str, name: str) -> Any:
    return built.graph[node_id].get("inputs", {}).get(name)


def full_params(body: TemplateBody, base: ResolvedBaseModel, prompt: str, init: InitImage | None) -> dict[str, Any]:
    """The request's parameters with the family's defaults filled in (what the images record)."""
    defaults = FAMILY_DEFAULTS[base.spec.family]
    params = body.model_dump(mode="json", exclude=_DELIVERY_FIELDS | {"init_image", "loras"})
    params["prompt"] = prompt
    if init is None:
        params["width"] = body.width or defaults.size
        params["height"] = body.height or defaults.size
    params["cfg"] = body.cfg if body.cfg is not None else defaults.cfg
    params["scheduler"] = body.scheduler or defaults.scheduler
    return params


async def _resolve(
    services: GenerationServices, engine: AsyncEngine, owner_id: uuid.UUID, body: TemplateBody, checker: GraphChecker
) -> tuple[ResolvedBaseModel, ResolvedLoras, InitImage | None]:
    errors: list[dict[str, Any]] = []
    base: ResolvedBaseModel | None = None
    try:
        base = await services.catalog.resolve(
            body.base_model, await checker.offered("CheckpointLoaderSimple", "ckpt_name")
        )
    except UnknownBaseModel as exc:
        errors.append({"field": "base_model", "reason": str(exc)})
    loras = await resolve_loras(
        engine,
        owner_id,
        body.loras,
        prompt=body.prompt,
        family=base.spec.family if base else "sd15",
        offered=await checker.offered("LoraLoader", "lora_name"),
    )
    errors.extend(loras.errors)
    init = None
    if isinstance(body, Img2ImgBody):
        settings = services.settings
        try:
            init = parse_init_image(
                body.init_image, max_bytes=settings.init_image_max_bytes, max_pixels=settings.init_image_max_pixels
            )
        except InitImageError as exc:
            errors.append({"field": "init_image", "reason": str(exc)})
    if errors or base is None:  # no base model means its error is among them
        raise ValidationFailed(errors)
    return base, loras, init


async def accept_template(
    services: GenerationServices,
    engine: AsyncEngine,
    storage: Storage,
    owner_id: uuid.UUID,
    job_id: uuid.UUID,
    body: TemplateBody,
    gate: ContentGate,
) -> GenerationPayload:
    """Everything up to the job row: raises ValidationFailed or ContentRefused (422), ServiceUnavailable (503).
    The content policy sees the prompt with the LoRAs' trigger words, not the negative prompt."""
    checker = services.backends().checker
    checker.ready_backends()
    base, loras, init = await _resolve(services, engine, owner_id, body, checker)
    update: dict[str, Any] = {"prompt": loras.prompt}
    if init is not None:
        update["init_image"] = f"atelier_{job_id}.{init.extension}"
    request = body.model_copy(update=update)
    prefix = filename_prefix(job_id)
    try:
        built = get_template(body.template).build(request, base.spec, loras=loras.refs, filename_prefix=prefix)
    except ValueError as exc:
        raise ValidationFailed([{"field": "template", "reason": str(exc)}]) from exc
    own = [
        (node, "filename_prefix") for node in built.output_node_ids if _input(built, node, "filename_prefix") == prefix
    ]
    await check_graph(
        gate, built.graph, Context.PROMPT, mapped(built.field_map, lambda _node, _input: "template"), own=own
    )
    outcome = await checker.check(lambda info: validate_built(built, info))
    if outcome.issues:
        raise ValidationFailed(issue_errors(outcome.issues))
    params = full_params(body, base, loras.prompt, init)
    params["seed"] = built.seed
    uploads: list[Upload] = []
    if init is not None:
        key = f"{storage_prefix(job_id)}/init.{init.extension}"
        await storage.put(key, init.data, init.content_type)
        targets = [pair for pair, path in built.field_map.items() if path == "init_image"]
        uploads.append(
            Upload(key=key, filename=update["init_image"], sha256=init.sha256, targets=targets, field="init_image")
        )
        params["init_image"] = {"key": key, "sha256": init.sha256, "width": init.width, "height": init.height}
    models = built.models
    required = {"checkpoints": [models.checkpoint] if models.checkpoint else [], "loras": list(models.loras)}
    return GenerationPayload(
        template=built.template,
        params=params,
        graph=built.graph,
        output_node_ids=list(built.output_node_ids),
        seed=built.seed,
        base_model=base.as_payload(),
        loras=loras.records,
        model_key=list(models.names()),
        required_models={folder: names for folder, names in required.items() if names},
        uploads=uploads,
        node_fields=node_fields(built),
        validated_on=outcome.backend,
        adult_content=gate.adult_content,
    )
