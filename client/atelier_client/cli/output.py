"""What commands print: JSON for scripts (``--json``) on stdout, tables and messages for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from atelier_client.errors import ApiError


def plain(value: Any) -> Any:
    """A value as JSON-ready data (models dumped, paths as strings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def print_json(value: Any) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(plain(value), indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_table(console: Console, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table for people."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_error(console: Console, error: ApiError) -> None:
    """An API error with the fields it names."""
    console.print(f"[bold red]error[/]: {error}")
    for field in error.errors:
        console.print(f"  [red]{field.field or 'body'}[/]: {field.reason}")
