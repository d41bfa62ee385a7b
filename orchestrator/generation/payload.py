# SPDX-License-Identifier: Apache-2.0
"""What a generation job carries in ``jobs.payload``: everything the worker needs, decided at acceptance."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

KIND = "generation"


def image_url(job_id: object, index: int) -> str:
    """The API path of a generation's image."""
    return f"/v1/generations/{job_id}/images/{index}"


def storage_prefix(job_id: object) -> str:
    """Every stored file of a generation lives under this prefix."""
    return f"generations/{job_id}"


def filename_prefix(job_id: object) -> str:
    """SaveImage's filename_prefix for a job: ComfyUI writes ``output/atelier/<job id>_00001_.png``."""
    return f"atelier/{job_id}"


class Upload(BaseModel):
    """An image kept in storage that the worker uploads to the chosen backend's input folder."""

    key: str = Field(description="Storage key of the image.")
    filename: str = Field(description="Name to upload it as (LoadImage's value).")
    sha256: str
    targets: list[tuple[str, str]] = Field(description="(node id, input name) pairs that name the file.")
    field: str = Field(description="The request field the image came from.")


class GenerationPayload(BaseModel):
    """A generation job's payload."""

    model_config = ConfigDict(extra="ignore")

    template: str | None = Field(description="Template name; None for a submitted workflow.")
    params: dict[str, Any] = Field(description="The request's parameters with defaults filled in.")
    graph: dict[str, dict[str, Any]] = Field(description="The API-format graph to queue.")
    output_node_ids: list[str] | None = Field(description="Nodes whose images are kept; None = every output.")
    seed: int | None = Field(description="The seed actually used (None when a workflow has no seed input).")
    base_model: dict[str, Any] | None = None
    loras: list[dict[str, Any]] = Field(default_factory=list)
    model_key: list[str] = Field(default_factory=list, description="Model files loaded, for backend affinity.")
    required_models: dict[str, list[str]] = Field(default_factory=dict, description="Folder -> files needed.")
    uploads: list[Upload] = Field(default_factory=list)
    node_fields: dict[str, str] = Field(default_factory=dict, description="Node id -> the request field it serves.")
    validated_on: str | None = Field(None, description="The backend whose /object_info accepted the graph.")
    adult_content: bool = Field(
        False, description="The submitting key carried the adult-content flag (images screened accordingly)."
    )

    def model_key_tuple(self) -> tuple[str, ...] | None:
        """The affinity key the pool compares (None when the graph loads no model)."""
        return tuple(self.model_key) or None

    def affinity_key(self) -> str | None:
        """What a backend must have loaded to run this without a model load, for the scheduler: the model files
        and the LoRAs' strengths (another strength re-patches the weights). None when it loads no model."""
        strengths = [f"{r.get('file')}@{r.get('strength_model')}/{r.get('strength_clip')}" for r in self.loras]
        return "\n".join([*self.model_key, *strengths]) or None
