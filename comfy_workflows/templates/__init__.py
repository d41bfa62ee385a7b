"""Workflow templates: one module each (a pydantic request model + a pure ``build``), and their registry.

Use::

    template = get_template("txt2img")
    request = template.parse({"base_model": "my-sd15", "prompt": "a cat"})
    built = template.build(request, model_spec, loras=resolved_loras, filename_prefix=job_id)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from pydantic import Field as ModelField

from comfy_workflows.templates import img2img, txt2img
from comfy_workflows.templates._stages import SeedSource
from comfy_workflows.templates.base import (
    BaseModelSpec,
    BuiltWorkflow,
    GenerationRequest,
    LoraRef,
    LoraRequest,
    ModelsUsed,
)
from comfy_workflows.templates.img2img import Img2ImgRequest
from comfy_workflows.templates.txt2img import Txt2ImgRequest

__all__ = [
    "AnyTemplateRequest",
    "BaseModelSpec",
    "BuildFunction",
    "BuiltWorkflow",
    "GenerationRequest",
    "Img2ImgRequest",
    "LoraRef",
    "LoraRequest",
    "ModelsUsed",
    "SeedSource",
    "Template",
    "Txt2ImgRequest",
    "UnknownTemplateError",
    "get_template",
    "list_templates",
]


class BuildFunction(Protocol):
    """The shape of every template's ``build``."""

    def __call__(
        self,
        request: Any,
        model: BaseModelSpec,
        *,
        loras: Sequence[LoraRef] = ...,
        filename_prefix: str,
        seed_source: SeedSource | None = ...,
    ) -> BuiltWorkflow:
        """Build the API graph for a request of this template's ``request_model``."""
        ...


@dataclass(frozen=True)
class Template:
    """A registered template."""

    name: str
    description: str
    request_model: type[GenerationRequest]
    build: BuildFunction
    example: Mapping[str, Any]
    """A minimal valid request body (for documentation and for showing the template's graph)."""

    def parse(self, payload: Mapping[str, Any]) -> GenerationRequest:
        """Validate a request body for this template (raises ``pydantic.ValidationError``)."""
        return self.request_model.model_validate(payload)


class UnknownTemplateError(KeyError):
    """No template has the requested name."""


_TEMPLATES: Mapping[str, Template] = {
    module.NAME: Template(module.NAME, module.DESCRIPTION, request_model, module.build, module.EXAMPLE)
    for module, request_model in (
        (txt2img, Txt2ImgRequest),
        (img2img, Img2ImgRequest),
    )
}

AnyTemplateRequest = Annotated[Txt2ImgRequest | Img2ImgRequest, ModelField(discriminator="template")]
"""Every template's request model, told apart by ``template`` (for a pydantic TypeAdapter or a field)."""


def get_template(name: str) -> Template:
    """The template called ``name``; raises :class:`UnknownTemplateError` naming the known ones."""
    try:
        return _TEMPLATES[name]
    except KeyError:
        raise UnknownTemplateError(f"unknown template {name!r}; known: {sorted(_TEMPLATES)}") from None


def list_templates() -> list[Template]:
    """All templates, by name."""
    return [_TEMPLATES[name] for name in sorted(_TEMPLATES)]
