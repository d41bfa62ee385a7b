"""Reading ``multipart/form-data`` bodies: parse errors are 400s, names pass hygiene, the size is bounded.

aiohttp's multipart reader reports a malformed body (no boundary, no closing boundary, a bad part
header, an unknown transfer encoding) as ``ValueError``, ``RuntimeError``, ``AssertionError`` or its
``BadHttpMessage``; only the calls into that reader are wrapped here, so an error of ours is never
mistaken for the client's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from orchestrator.api.hygiene import check_name
from orchestrator.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

CHUNK = 64 * 1024
_MALFORMED = (ValueError, RuntimeError, AssertionError, LookupError, HttpProcessingError)


@contextlib.contextmanager
def _parsing() -> Iterator[None]:
    try:
        yield
    except _MALFORMED as exc:
        raise BadRequest(f"the multipart body is malformed: {exc or type(exc).__name__}") from exc


@dataclass
class FilePart:
    """One file part: its field name and file name (both checked), read in chunks."""

    name: str
    filename: str
    _part: BodyPartReader
    _budget: list[int]

    async def read_chunk(self) -> bytes:
        """The next chunk (empty at the part's end); 413 once the request passes its total limit."""
        with _parsing():
            chunk = await self._part.read_chunk(CHUNK)
        self._budget[0] -= len(chunk)
        if self._budget[0] < 0:
            raise PayloadTooLarge("the upload is larger than ATELIER_MAX_UPLOAD_BYTES; send fewer files per request")
        return chunk


async def file_parts(request: web.Request, total_limit: int, what: str) -> AsyncIterator[FilePart]:
    """The file parts of a ``multipart/form-data`` request, in order; parts without a file name are skipped."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType(f"send {what} as multipart/form-data")
    if request.content_length is not None and request.content_length > total_limit:
        raise PayloadTooLarge(f"the body has {request.content_length} bytes; this endpoint accepts {total_limit}")
    with _parsing():
        reader = await request.multipart()
    budget = [total_limit]
    while True:
        with _parsing():
            part = await reader.next()
            if part is None:
                return
            if not isinstance(part, BodyPartReader):
                raise ValidationFailed([{"field": "body", "reason": "nested multipart bodies are not supported"}])
            name, filename = part.name or "", part.filename
        check_name(name, "part name")
        if filename is None:
            with _parsing():
                await part.release()
            continue
        check_name(filename, f"{name or 'part'}.filename")
        yield FilePart(name, filename, part, budget)
