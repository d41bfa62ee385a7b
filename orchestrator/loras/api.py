"""/v1/loras: the registry of published LoRAs, their versions with metadata, downloads, deletion."""

from __future__ import annotations

from aiohttp import web

from orchestrator.api.auth import OWNER
from orchestrator.api.bodies import json_response, parse_query
from orchestrator.api.files import stored_file_response
from orchestrator.api.paths import path_uuid
from orchestrator.api.routing import Router
from orchestrator.app_keys import ENGINE, SETTINGS, STORAGE
from orchestrator.loras.library import delete_lora, lora_page, owned_lora, version_of
from orchestrator.loras.schemas import LoraList, LoraOut, LoraQuery

router = Router()


@router.route(
    "GET", "/v1/loras", summary="List your LoRAs", tag="loras", query=LoraQuery, response=LoraList, errors=(401, 422)
)
async def list_all_loras(request: web.Request) -> web.Response:
    """Newest first, each with its versions and their metadata."""
    query = parse_query(request, LoraQuery)
    found, next_cursor = await lora_page(
        request.app[ENGINE], request[OWNER], subject_id=query.subject_id, limit=query.limit, cursor=query.cursor
    )
    return json_response(LoraList(items=[LoraOut.of(f) for f in found], next_cursor=next_cursor))


@router.route("GET", "/v1/loras/{id}", summary="Get one LoRA", tag="loras", response=LoraOut, errors=(401, 404))
async def get_one_lora(request: web.Request) -> web.Response:
    """The LoRA, its versions, their hashes, sizes and provenance metadata."""
    return json_response(LoraOut.of(await owned_lora(request.app[ENGINE], request[OWNER], path_uuid(request, "LoRA"))))


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
    found = await owned_lora(request.app[ENGINE], request[OWNER], path_uuid(request, "LoRA"))
    version = version_of(found, request.match_info["n"])
    name = version.comfy_name.rsplit("/", 1)[-1]
    return await stored_file_response(request.app[STORAGE], version.storage_key, "application/octet-stream", name)


@router.route(
    "DELETE", "/v1/loras/{id}", summary="Delete a LoRA and all its versions", tag="loras", status=204, errors=(401, 404)
)
async def delete_one_lora(request: web.Request) -> web.Response:
    """Its files leave storage and the models store (ComfyUI stops listing them), then its rows go."""
    app = request.app
    loras_dir = app[SETTINGS].models_dir.absolute() / "loras"
    await delete_lora(app[ENGINE], app[STORAGE], loras_dir, request[OWNER], path_uuid(request, "LoRA"))
    return web.Response(status=204)
