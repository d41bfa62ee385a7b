"""Small helpers shared by the training feature's handlers."""

from __future__ import annotations

import uuid

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from orchestrator.db.models import Subject
from orchestrator.errors import Conflict, NotFound
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
