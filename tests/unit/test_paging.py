"""Keyset paging: cursors round-trip, pages split where they should, foreign cursors are refused."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.db.paging import decode_cursor, encode_cursor, page
from orchestrator.errors import ValidationFailed


@dataclass
class Row:
    created_at: datetime
    id: uuid.UUID


def test_a_cursor_names_the_last_row_shown_and_round_trips() -> None:
    start = datetime(2026, 11, 21, tzinfo=UTC)
    rows = [Row(start - timedelta(seconds=n), uuid.uuid4()) for n in range(5)]
    shown, cursor = page(rows, 3)
    assert shown == rows[:3]
    assert cursor is not None
    assert decode_cursor(cursor) == (rows[2].created_at, rows[2].id)
    assert page(rows[:3], 3) == (rows[:3], None), "no cursor on the last page"
    assert decode_cursor(encode_cursor(start, rows[0].id)) == (start, rows[0].id)


@pytest.mark.parametrize("cursor", ["nope", "", "bm90IGEgY3Vyc29y"])
def test_a_cursor_we_did_not_make_is_a_422_naming_it(cursor: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        decode_cursor(cursor)
    assert raised.value.errors[0]["field"] == "cursor"
