"""Newest-first keyset paging, for every listing of the API (jobs, subjects, LoRAs).

A page is the rows below the cursor's ``(created_at, id)``, newest first; the cursor of the next page is
an opaque token naming the last row shown. One extra row is fetched to tell whether a next page exists.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from orchestrator.errors import ValidationFailed


class _Dated(Protocol):
    created_at: datetime
    id: uuid.UUID


RowT = TypeVar("RowT", bound=_Dated)
SelectT = TypeVar("SelectT", bound=Select[Any])


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """An opaque cursor pointing just past a row."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor points to; 422 naming ``cursor`` when it is not one of ours."""
    try:
        stamp, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), uuid.UUID(row_id)
    except ValueError as exc:
        raise ValidationFailed([{"field": "cursor", "reason": "not a cursor returned by this API"}]) from exc


def newest_first(stmt: SelectT, model: Any, *, cursor: str | None, limit: int) -> SelectT:
    """``stmt`` restricted to the page after ``cursor``, newest first, with one row more than ``limit``."""
    created_at: InstrumentedAttribute[datetime] = model.created_at
    row_id: InstrumentedAttribute[uuid.UUID] = model.id
    if cursor:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(created_at < at, and_(created_at == at, row_id < last_id)))
    return stmt.order_by(created_at.desc(), row_id.desc()).limit(limit + 1)


def page(rows: Sequence[RowT], limit: int) -> tuple[list[RowT], str | None]:
    """The page's rows and the cursor of the next page (None on the last page)."""
    if len(rows) <= limit:
        return list(rows), None
    last = rows[limit - 1]
    return list(rows[:limit]), encode_cursor(last.created_at, last.id)
