"""The one way a stored object is served to a client: a local store's file itself, a presigned redirect from S3."""

from __future__ import annotations

from aiohttp import web

from orchestrator.errors import NotFound
from orchestrator.storage import Storage

PRESIGNED_EXPIRES_S = 900


async def stored_file_response(
    storage: Storage, key: str, content_type: str, filename: str | None = None
) -> web.StreamResponse:
    """Serve the object under ``key``.

    A local store answers with the file (sent by the kernel, never read into memory); S3 with a 302 to a
    URL valid for 15 minutes, so the bytes never pass through the service; a store that offers neither
    answers with the bytes. An object that is gone is a 404. ``filename`` makes the answer a download
    (``Content-Disposition: attachment``).
    """
    headers = {"Content-Type": content_type}
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    local = storage.local_path(key)
    if local is not None:
        if not local.is_file():
            raise NotFound("the file is no longer in storage")
        return web.FileResponse(local, headers=headers)
    url = await storage.presigned_get(key, expires_s=PRESIGNED_EXPIRES_S)
    if url is not None:
        raise web.HTTPFound(url)
    try:
        body = await storage.get(key)
    except FileNotFoundError as exc:
        raise NotFound("the file is no longer in storage") from exc
    return web.Response(body=body, headers=headers)
