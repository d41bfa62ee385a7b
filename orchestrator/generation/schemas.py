# SPDX-License-Identifier: Apache-2.0
"""Request and response models of /v1/generations and friends."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, HttpUrl, RootModel, Tag

from comfy_workflows.templates import Img2ImgRequest, Txt2ImgRequest
from orchestrator.api.schemas import ListQuery, Page
from orchestrator.db.models import Job
from orchestrator.jobs.states import Status

MAX_WORKFLOW_NODES = 500


class _Delivery(BaseModel):
    """How the job is queued and reported, common to every body."""

    priority: int = Field(0, ge=-100, le=100, description="Higher runs first.")
    webhook_url: HttpUrl | None = Field(None, description="Called with the job when it ends.")


class Txt2ImgBody(Txt2ImgRequest, _Delivery):
    """A txt2img generation (see GET /v1/templates/txt2img)."""


class Img2ImgBody(Img2ImgRequest, _Delivery):
    """An img2img generation (see GET /v1/templates/img2img)."""

    init_image: str = Field(
        min_length=1,
        description="The image to start from: a base64 data URL (data:image/png;base64,...) or bare base64; "
        "PNG, JPEG or WebP.",
    )


class WorkflowBody(_Delivery):
    """An API-format ComfyUI graph (as ComfyUI's "Export (API)" writes it; the editor's UI format is accepted too).

    Only allowlisted node classes may appear; URLs in inputs must point at allowlisted hosts.
    """

    model_config = ConfigDict(extra="forbid")

    workflow: dict[str, Any] = Field(description="The graph: {node_id: {class_type, inputs}}.")
    inputs: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Values set on the graph before it runs: {node_id: {input_name: value}}. A data URL given "
        "to a LoadImage 'image' input is uploaded to the backend as that image.",
    )


class RegisteredBody(_Delivery):
    """A request for a template registered from a graph edited in ComfyUI (POST /v1/templates).

    ``template`` names it; the other fields are the ones its parameter markers define
    (GET /v1/templates/{name} shows their schema). Image fields take a data URL.
    """

    model_config = ConfigDict(extra="allow")

    template: str = Field(description="The name the template was registered under.")


BUILT_IN = ("txt2img", "img2img")


def _body_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        if "workflow" in value:
            return "workflow"
        template = value.get("template", "txt2img")
        if not isinstance(template, str):
            return None
        return template if template in BUILT_IN else "registered"
    return None


BODY_TAGS = (*BUILT_IN, "workflow", "registered")


class GenerationBody(
    RootModel[
        Annotated[
            Annotated[Txt2ImgBody, Tag("txt2img")]
            | Annotated[Img2ImgBody, Tag("img2img")]
            | Annotated[WorkflowBody, Tag("workflow")]
            | Annotated[RegisteredBody, Tag("registered")],
            Discriminator(_body_tag),
        ]
    ]
):
    """POST /v1/generations: a template request (``template``: txt2img | img2img | a registered template's
    name) or ``{workflow, inputs?}``."""


class ImageOut(BaseModel):
    """One stored image of a generation."""

    index: int
    url: str = Field(description="GET it for the image (a redirect to a presigned URL with S3 storage).")
    sha256: str
    width: int | None = None
    height: int | None = None
    size_bytes: int | None = None


class GenerationOut(BaseModel):
    """A generation as clients see it."""

    id: uuid.UUID
    status: Status
    template: str | None = Field(description="The template, or null for a submitted workflow.")
    base_model: dict[str, Any] | None = None
    params: dict[str, Any] = Field(description="The request's parameters (init images as storage references).")
    loras: list[dict[str, Any]] = Field(default_factory=list, description="LoRAs used, resolved to files.")
    seed: int | None = Field(None, description="The seed actually used.")
    priority: int
    progress: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    images: list[ImageOut] = Field(default_factory=list)
    attempts: int
    backend: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    events_url: str

    @classmethod
    def of(cls, job: Job) -> GenerationOut:
        """From a generation's jobs row."""
        payload = job.payload
        images = [ImageOut.model_validate(i) for i in (job.result or {}).get("images", [])]
        return cls(
            id=job.id,
            status=Status(job.status),
            template=payload.get("template"),
            base_model=payload.get("base_model"),
            params=payload.get("params", {}),
            loras=payload.get("loras", []),
            seed=payload.get("seed"),
            priority=job.priority,
            progress=job.progress,
            result=job.result,
            error=job.error,
            images=images,
            attempts=job.attempts,
            backend=job.backend,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            events_url=f"/v1/jobs/{job.id}/events",
        )


class GenerationList(Page[GenerationOut]):
    """A page of generations, newest first."""


class GenerationListQuery(ListQuery):
    """Filters for GET /v1/generations."""

    template: str | None = Field(None, description="Only generations of this template ('workflow' for raw graphs).")
    base_model: str | None = Field(None, description="Only generations with this base model name.")


class TemplateSummary(BaseModel):
    """A template in the list."""

    name: str
    description: str
    url: str
    input_schema: dict[str, Any]
    registered: bool = Field(False, description="True for a template you registered from a ComfyUI graph.")


class TemplateList(BaseModel):
    """Every template."""

    items: list[TemplateSummary]


class TemplateQuery(BaseModel):
    """Which family's wiring to show for a template."""

    model_config = ConfigDict(extra="forbid")

    family: Literal["sd15", "sdxl", "flux"] = Field("sd15", description="Model family of the example graph.")


class TemplateDetail(TemplateSummary):
    """A template with its example request and graphs."""

    example: dict[str, Any]
    family: str | None = Field(description="The model family of the example; None for a registered template.")
    api_graph: dict[str, Any] = Field(description="The example's API-format graph (POST it as {workflow}).")
    ui_graph: dict[str, Any] | None = Field(
        None,
        description="The same graph in ComfyUI's editor format (from a ready backend's /object_info, else from "
        "the node definitions the service knows).",
    )
    ui_graph_unavailable: str | None = Field(None, description="Why ui_graph is null.")
    field_map: list[dict[str, str]] = Field(
        description="Which request field sets which node input (for a built-in template's graphs: the value "
        "input of the parameter marker that stands for the field)."
    )
    unmarked_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Request fields of a built-in template that no marker in the graphs stands for, and why "
        "(the LoRA list: add Atelier LoRA loader nodes instead).",
    )


class RegisterTemplate(BaseModel):
    """A graph edited in ComfyUI whose parameters are marked with Atelier…Input nodes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The template's name (lowercase letters, digits, - and _; not a built-in name).")
    description: str = Field("", max_length=2000, description="What the template makes.")
    workflow: dict[str, Any] = Field(description="The graph in API format or in the editor's (UI) format.")


class BackendList(BaseModel):
    """The ComfyUI backends this process uses."""

    configured: bool
    items: list[dict[str, Any]]


class ModelQuery(BaseModel):
    """Options of GET /v1/models."""

    model_config = ConfigDict(extra="forbid")

    refresh: bool = Field(False, description="Ask the backends for their model lists again (after adding files).")


class ModelList(BaseModel):
    """Models the backends offer, with family where known, and the caller's trained LoRAs."""

    checkpoints: list[dict[str, Any]]
    catalog: list[dict[str, Any]]
    loras: list[dict[str, Any]]
