"""Operations on generations, templates, backends and models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from atelier_client._calls import Call, Id, body, model, nothing, operation, path, query, saved
from atelier_client.models import (
    Accepted,
    BackendList,
    GenerationList,
    GenerationOut,
    ModelList,
    TemplateDetail,
    TemplateList,
    TemplateSummary,
)


@operation("create_generation")
def create_generation(request: Mapping[str, Any] | BaseModel | None = None, /, **fields: Any) -> Call[Accepted]:
    """Queue a generation: a template request (``template``, ``base_model``, ``prompt``, ``loras``, ...) or
    ``workflow`` (an API-format graph) with ``inputs``; as a mapping, a model or keyword fields."""
    return Call("create_generation", "POST", "/v1/generations", model(Accepted), json=body(request, fields))


@operation("list_all_generations")
def list_generations(
    *,
    status: str | None = None,
    template: str | None = None,
    base_model: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[GenerationList]:
    """A page of the caller's generations."""
    params = query(status=status, template=template, base_model=base_model, limit=limit, cursor=cursor)
    return Call("list_all_generations", "GET", "/v1/generations", model(GenerationList), params=params)


@operation("get_generation")
def get_generation(generation_id: Id) -> Call[GenerationOut]:
    """One generation with its images."""
    return Call("get_generation", "GET", path("/v1/generations/{id}", id=generation_id), model(GenerationOut))


@operation("cancel_generation")
def cancel_generation(generation_id: Id) -> Call[GenerationOut]:
    """Cancel a generation (ComfyUI is interrupted when it runs)."""
    url = path("/v1/generations/{id}/cancel", id=generation_id)
    return Call("cancel_generation", "POST", url, model(GenerationOut))


@operation("delete_one_generation")
def delete_generation(generation_id: Id) -> Call[None]:
    """Delete a finished generation and its images."""
    return Call("delete_one_generation", "DELETE", path("/v1/generations/{id}", id=generation_id), nothing)


@operation("get_generation_image")
def download_image(generation_id: Id, index: int, dest: Path | str) -> Call[Path]:
    """Save image ``index`` of a generation to ``dest`` (PNG)."""
    url = path("/v1/generations/{id}/images/{n}", id=generation_id, n=index)
    return Call("get_generation_image", "GET", url, saved(Path(dest)), download_to=Path(dest))


@operation("get_generation_preview")
def download_preview(generation_id: Id, dest: Path | str) -> Call[Path]:
    """Save the latest preview of a running generation to ``dest``."""
    url = path("/v1/generations/{id}/preview", id=generation_id)
    return Call("get_generation_preview", "GET", url, saved(Path(dest)), download_to=Path(dest))


@operation("list_all_templates")
def list_templates() -> Call[TemplateList]:
    """Built-in and registered templates with their input schemas."""
    return Call("list_all_templates", "GET", "/v1/templates", model(TemplateList))


@operation("get_one_template")
def get_template(name: str, *, family: str | None = None) -> Call[TemplateDetail]:
    """A template: input schema, example, API-format and editor-format graphs."""
    url = path("/v1/templates/{name}", name=name)
    return Call("get_one_template", "GET", url, model(TemplateDetail), params=query(family=family))


@operation("register_template")
def register_template(
    name: str, workflow: Mapping[str, Any], *, description: str | None = None
) -> Call[TemplateSummary]:
    """Register a graph edited in ComfyUI (API or editor format) whose parameters are marked by our nodes."""
    payload = {"name": name, "workflow": dict(workflow)} | ({"description": description} if description else {})
    return Call("register_template", "POST", "/v1/templates", model(TemplateSummary), json=payload)


@operation("delete_template")
def delete_template(name: str) -> Call[None]:
    """Forget a registered template."""
    return Call("delete_template", "DELETE", path("/v1/templates/{name}", name=name), nothing)


@operation("list_backends")
def list_backends() -> Call[BackendList]:
    """The ComfyUI backends and their health."""
    return Call("list_backends", "GET", "/v1/backends", model(BackendList))


@operation("list_models")
def list_models(*, refresh: bool | None = None) -> Call[ModelList]:
    """Checkpoints, catalog entries and LoRAs the backends offer."""
    return Call("list_models", "GET", "/v1/models", model(ModelList), params=query(refresh=refresh))
