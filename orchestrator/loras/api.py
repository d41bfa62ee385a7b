"""/v1/loras: the registry of published LoRAs, their versions with metadata, downloads, deletion."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import delete

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query
from orchestrator.api.files import stored_file_response
from orchestrator.api.routing import Router
from orchestrator.api.schemas import Page, PageQuery
from orchestrator.app_keys import ENGINE, SETTINGS, STORAGE
from orchestrator.db.models import Lora
from orchestrator.errors import NotFound
from orchestrator.loras.store import LoraWithVersions, get_lora, list_loras, remove_lora_files

router = Router()


class LoraVersionOut(BaseModel):
    """One published file of a LoRA."""

    version: int
    comfy_name: str = Field(description="Name in ComfyUI's LoRA list (path under models/loras).")
    sha256: str
    size_bytes: int
    base_model: str
    base_model_sha256: str | None = None
    training_job_id: uuid.UUID | None = None
    metadata: dict[str, Any] = Field(description="The file's safetensors metadata: sd-scripts' ss_* and atelier_*.")
    created_at: datetime
    file_url: str


class LoraOut(BaseModel):
    """A LoRA of a subject and its versions (oldest first)."""

    id: uuid.UUID
    name: str = Field(description="Use it (or the id) in generations: loras[].lora.")
    subject_id: uuid.UUID | None = None
    base_family: str
    trigger_word: str | None = Field(None, description="Added to generation prompts that lack it.")
    created_at: datetime
    versions: list[LoraVersionOut]

    @classmethod
    def of(cls, found: LoraWithVersions) -> LoraOut:
        """From registry rows."""
        lora = found.lora
        versions = [
            LoraVersionOut(
                version=v.version,
                comfy_name=v.comfy_name,
                sha256=v.sha256,
                size_bytes=v.size_bytes,
                base_model=v.base_model,
                base_model_sha256=v.base_model_sha256,
                training_job_id=v.training_job_id,
                metadata=v.metadata_,
                created_at=v.created_at,
                file_url=f"/v1/loras/{lora.id}/versions/{v.version}/file",
            )
            for v in found.versions
        ]
        return cls(
            id=lora.id,
            name=lora.name,
            subject_id=lora.subject_id,
            base_family=lora.base_family,
            trigger_word=lora.trigger_word,
            created_at=lora.created_at,
            versions=versions,
        )


class LoraList(Page[LoraOut]):
    """A page of LoRAs, newest first."""


class LoraQuery(PageQuery):
    """Filters and paging for /v1/loras."""

    subject_id: uuid.UUID | None = Field(None, description="Only this subject's LoRAs.")


def _lora_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError as exc:
        raise NotFound(f"no LoRA with id {request.match_info['id']!r}") from exc


async def _owned(request: web.Request) -> LoraWithVersions:
    async with request.app[ENGINE].connect() as conn:
        found = await get_lora(conn, request[OWNER], _lora_id(request))
    if found is None:
        raise NotFound(f"no LoRA with id {request.match_info['id']}")
    return found


@router.route(
    "GET", "/v1/loras", summary="List your LoRAs", tag="loras", query=LoraQuery, response=LoraList, errors=(401, 422)
)
async def list_all_loras(request: web.Request) -> web.Response:
    """Newest first, each with its versions and their metadata."""
    query = parse_query(request, LoraQuery)
    async with request.app[ENGINE].connect() as conn:
        found, next_cursor = await list_loras(
            conn, request[OWNER], subject_id=query.subject_id, limit=query.limit, cursor=query.cursor
        )
    return json_response(LoraList(items=[LoraOut.of(f) for f in found], next_cursor=next_cursor))


@router.route("GET", "/v1/loras/{id}", summary="Get one LoRA", tag="loras", response=LoraOut, errors=(401, 404))
async def get_one_lora(request: web.Request) -> web.Response:
    """The LoRA, its versions, their hashes, sizes and provenance metadata."""
    return json_response(LoraOut.of(await _owned(request)))


@router.route(
    "GET",
    "/v1/loras/{id}/versions/{n}/file",
    summary="Download a LoRA version",
    tag="loras",
    produces="application/octet-stream",
    errors=(401, 404),
    extra_responses={302: "S3: a presigned download URL"},
)
async def download_version(request: web.Request) -> web.StreamResponse:
    """The .safetensors file (local storage), or a redirect to a presigned URL (S3)."""
    found = await _owned(request)
    wanted = request.match_info["n"]
    version = next((v for v in found.versions if str(v.version) == wanted), None)
    if version is None:
        raise NotFound(f"LoRA {found.lora.id} has no version {wanted}")
    name = version.comfy_name.rsplit("/", 1)[-1]
    return await stored_file_response(request.app[STORAGE], version.storage_key, "application/octet-stream", name)


@router.route(
    "DELETE", "/v1/loras/{id}", summary="Delete a LoRA and all its versions", tag="loras", status=204, errors=(401, 404)
)
async def delete_one_lora(request: web.Request) -> web.Response:
    """Its files leave storage and the models store (ComfyUI stops listing them), then its rows go."""
    found = await _owned(request)
    loras_dir = request.app[SETTINGS].models_dir.absolute() / "loras"
    await remove_lora_files(request.app[STORAGE], loras_dir, found.lora.id, found.versions)
    async with request.app[ENGINE].begin() as conn:
        await conn.execute(delete(Lora).where(Lora.id == found.lora.id))
    return web.Response(status=204)
