"""Small helpers shared by the training feature's handlers."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from orchestrator.db.models import Subject
from orchestrator.errors import Conflict, NotFound
from orchestrator.storage import Storage
from orchestrator.training.subjects_db import get_subject, pending_erasure


def path_id(request: web.Request, name: str, what: str) -> uuid.UUID:
    """A path id; a malformed one cannot name anything, so it is a 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError as exc:
        raise NotFound(f"no {what} with id {request.match_info[name]!r}") from exc


async def writable_subject(conn: AsyncConnection, owner_id: uuid.UUID, subject_id: uuid.UUID) -> Subject:
    """The owner's subject, unless it is being erased (409): nothing new may be added to it then."""
    subject = await get_subject(conn, owner_id, subject_id)
    if await pending_erasure(conn, subject_id) is not None:
        raise Conflict(f"subject {subject_id} is being erased")
    return subject


async def file_response(storage: Storage, key: str, content_type: str, filename: str) -> web.StreamResponse:
    """Serve a stored object: the file itself from a local store, a redirect to a presigned URL from S3."""
    local = storage.local_path(key)
    if local is not None:
        if not local.is_file():
            raise NotFound("the file is no longer in storage")
        headers = {"Content-Type": content_type, "Content-Disposition": f'attachment; filename="{filename}"'}
        return web.FileResponse(local, headers=headers)
    url = await storage.presigned_get(key)
    if url is None:
        raise NotFound("the file cannot be served from this storage")
    raise web.HTTPFound(url)
