# SPDX-License-Identifier: Apache-2.0
"""Templates registered from graphs edited in ComfyUI, and generations that use them.

A user opens one of our graphs in ComfyUI's editor (``GET /v1/templates/{name}`` gives the editor
format), changes it, marks its parameters with our ``Atelier…Input`` nodes, and registers it with
``POST /v1/templates``. :func:`comfy_workflows.registration.register_workflow` turns the graph into a
template whose request fields are the markers; it is kept per owner in the ``templates`` table.
A generation then names it: ``{"template": "<name>", <field>: <value>, ...}``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from comfy_workflows.registration import (
    RegisteredTemplate,
    RegistrationError,
    RegistrationProblem,
    register_workflow,
    render,
)
from orchestrator.db.models import SavedTemplate
from orchestrator.errors import ServiceUnavailable, ValidationFailed, validation_errors
from orchestrator.generation.acceptance import issue_errors, node_fields
from orchestrator.generation.content import check_graph, mapped, workflow_input
from orchestrator.generation.generation_services import GenerationServices
from orchestrator.generation.init_images import InitImageError, parse_init_image
from orchestrator.generation.payload import GenerationPayload, Upload, filename_prefix, storage_prefix
from orchestrator.generation.schemas import RegisteredBody, RegisterTemplate
from orchestrator.generation.workflows import graph_facts
from orchestrator.policy import ContentGate, Context, TextField
from orchestrator.storage import Storage

_UPSERT = text(
    """
INSERT INTO templates (id, owner_id, name, definition) VALUES (:id, :owner_id, :name, CAST(:definition AS jsonb))
ON CONFLICT (owner_id, name) DO UPDATE SET definition = EXCLUDED.definition, updated_at = now()
RETURNING (xmax = 0) AS created
"""
)


async def save_template(engine: AsyncEngine, owner_id: uuid.UUID, template: RegisteredTemplate) -> bool:
    """Keep (or replace) the owner's template of that name; True when it is new."""
    params = {
        "id": uuid.uuid4(),
        "owner_id": owner_id,
        "name": template.name,
        "definition": template.model_dump_json(),
    }
    async with engine.begin() as conn:
        return bool((await conn.execute(_UPSERT, params)).scalar_one())


async def load_template(engine: AsyncEngine, owner_id: uuid.UUID, name: str) -> RegisteredTemplate | None:
    """The owner's template of that name."""
    stmt = select(SavedTemplate.definition).where(SavedTemplate.owner_id == owner_id, SavedTemplate.name == name)
    async with engine.connect() as conn:
        definition = await conn.scalar(stmt)
    return RegisteredTemplate.model_validate(definition) if definition is not None else None


async def list_saved(engine: AsyncEngine, owner_id: uuid.UUID) -> list[RegisteredTemplate]:
    """The owner's registered templates, by name."""
    stmt = select(SavedTemplate.definition).where(SavedTemplate.owner_id == owner_id).order_by(SavedTemplate.name)
    async with engine.connect() as conn:
        return [RegisteredTemplate.model_validate(d) for d in (await conn.scalars(stmt)).all()]


async def delete_saved(engine: AsyncEngine, owner_id: uuid.UUID, name: str) -> bool:
    """Forget the owner's template; False when there was none."""
    stmt = delete(SavedTemplate).where(SavedTemplate.owner_id == owner_id, SavedTemplate.name == name)
    async with engine.begin() as conn:
        return bool((await conn.execute(stmt)).rowcount)


class _ImageFields:
    """Image fields arrive as data URLs; they become uploads the worker sends to the chosen backend."""

    def __init__(self, services: GenerationServices, template: RegisteredTemplate, job_id: uuid.UUID) -> None:
        self._settings = services.settings
        self._fields = {f.name: f for f in template.fields if f.kind == "image"}
        self._job_id = job_id
        self.images: list[tuple[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def replace(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with each image data URL swapped for the name it will be uploaded as."""
        out = dict(values)
        for name, field in self._fields.items():
            value = out.get(name)
            if not isinstance(value, str) or not value.startswith("data:"):
                continue
            limits = {
                "max_bytes": self._settings.init_image_max_bytes,
                "max_pixels": self._settings.init_image_max_pixels,
            }
            try:
                image = parse_init_image(value, **limits)
            except InitImageError as exc:
                self.errors.append({"field": name, "reason": str(exc)})
                continue
            out[name] = f"atelier_{self._job_id}_{field.node_id}.{image.extension}"
            self.images.append((name, image))
        return out

    async def store(self, storage: Storage, filenames: dict[str, Any]) -> list[Upload]:
        """Keep the images in storage; the uploads the worker makes before queueing the prompt."""
        uploads = []
        for name, image in self.images:
            field = self._fields[name]
            key = f"{storage_prefix(self._job_id)}/input-{field.node_id}.{image.extension}"
            await storage.put(key, image.data, image.content_type)
            targets = [(field.node_id, field.input)]
            uploads.append(Upload(key=key, filename=filenames[name], sha256=image.sha256, targets=targets, field=name))
        return uploads


async def accept_registered(
    services: GenerationServices,
    engine: AsyncEngine,
    storage: Storage,
    owner_id: uuid.UUID,
    job_id: uuid.UUID,
    body: RegisteredBody,
    gate: ContentGate,
) -> GenerationPayload:
    """Everything up to the job row for a registered template (422 naming the field, 503 without a backend).
    Its texts go past the content policy again (the policy may have changed since it was registered)."""
    template = await load_template(engine, owner_id, body.template)
    if template is None:
        reason = f"no template called {body.template!r}; GET /v1/templates lists yours and the built-in ones"
        raise ValidationFailed([{"field": "template", "reason": reason}])
    images = _ImageFields(services, template, job_id)
    values = images.replace(dict(body.model_extra or {}))
    if images.errors:
        raise ValidationFailed(images.errors)
    seed = random.randrange(2**53)  # drawn once, so every backend's check sees the same graph
    uploaded = frozenset(values[name] for name, _ in images.images)
    checker = services.backends().checker
    try:
        outcome = await checker.check(
            lambda info: render(
                template, values, info, filename_prefix=filename_prefix(job_id), seed_source=lambda: seed,
                policy=services.policy, uploaded=uploaded,
            ).issues
        )  # fmt: skip
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from exc
    if outcome.issues:
        raise ValidationFailed(issue_errors(outcome.issues))
    built = template.build(values, filename_prefix=filename_prefix(job_id), seed_source=lambda: seed)
    field_of = mapped(template.field_map(), lambda _node, _input: "template")
    await check_graph(gate, built.graph, Context.TEMPLATE_FIELD, field_of)
    _, names, required = graph_facts(built.graph)
    params = {k: v for k, v in template.parse(values).items() if not str(v).startswith("atelier_")}
    return GenerationPayload(
        template=template.name,
        params={**params, "registered": True},
        graph=built.graph,
        output_node_ids=list(built.output_node_ids),
        seed=built.seed,
        model_key=names,
        required_models=required,
        uploads=await images.store(storage, values),
        node_fields=node_fields(built),
        validated_on=outcome.backend,
        adult_content=gate.adult_content,
    )


def _problem_field(problem: RegistrationProblem) -> str:
    if problem.kind == "bad_name":
        return "name"
    if problem.node_id is None:
        return "workflow"
    return ".".join(p for p in ("workflow", problem.node_id, problem.input_name) if p)


async def register_graph(
    services: GenerationServices,
    engine: AsyncEngine,
    owner_id: uuid.UUID,
    body: RegisterTemplate,
    gate: ContentGate,
) -> tuple[RegisteredTemplate, bool]:
    """Register a graph edited in ComfyUI as the owner's template; True when the name is new.

    422 lists every registration problem with its node and input; the graph's texts (the markers' defaults,
    the fixed prompts; not text that reaches only a negative input), the name and the description go past
    the content policy before anything is saved.
    """
    if services.comfy is None:
        raise ServiceUnavailable(
            "registering needs a ComfyUI backend (set ATELIER_COMFYUI_URLS or ATELIER_COMFYUI_DIR)"
        )
    checker = services.comfy.checker
    info = await checker.info(checker.ready_backends()[0], refresh=True)
    try:
        template = await asyncio.to_thread(
            register_workflow, body.workflow, info, name=body.name, description=body.description,
            policy=services.policy,
        )  # fmt: skip
    except RegistrationError as exc:
        errors = [{"field": _problem_field(p), "reason": p.message, "type": p.kind} for p in exc.problems]
        raise ValidationFailed(errors) from exc
    own = [
        TextField("name", template.name, Context.TEMPLATE_REGISTRATION),
        TextField("description", template.description, Context.TEMPLATE_REGISTRATION),
    ]
    await check_graph(gate, template.graph, Context.TEMPLATE_REGISTRATION, workflow_input, own)
    return template, await save_template(engine, owner_id, template)
