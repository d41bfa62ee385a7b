"""What one API operation is, independent of how it is sent: the sync and async clients execute these.

Each operation function returns a :class:`Call` (method, path, query, body, how to read the answer), and
carries the OpenAPI ``operationId`` it implements, so a test can hold the SDK to the whole API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

T = TypeVar("T")
P = ParamSpec("P")
ModelT = TypeVar("ModelT", bound=BaseModel)
Id = str | uuid.UUID  # an id as the API gave it, or its string
FileField = tuple[str, tuple[str, bytes, str]]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to turn its answer into a result."""

    operation: str
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: list[FileField] | None = None
    download_to: Path | None = None


def path(template: str, **parts: object) -> str:
    """A path with each part quoted as one segment."""
    return template.format(**{name: quote(str(value), safe="") for name, value in parts.items()})


def query(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as the API spells them."""
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in values.items() if v is not None}


def body(fields: Mapping[str, Any] | BaseModel | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON body from a mapping or model plus keyword fields (unset ones left out)."""
    base: dict[str, Any] = {}
    if isinstance(fields, BaseModel):
        base = fields.model_dump(mode="json", exclude_none=True, by_alias=True)
    elif fields is not None:
        base = dict(fields)
    return base | {k: v for k, v in extra.items() if v is not None}


def model(cls: type[ModelT]) -> Callable[[httpx.Response], ModelT]:
    """Read the answer as ``cls``."""
    return lambda response: cls.model_validate_json(response.content)


def nothing(_response: httpx.Response) -> None:
    """An answer without a body (204)."""


def json_object(response: httpx.Response) -> dict[str, Any]:
    """An answer read as a JSON object."""
    result: dict[str, Any] = response.json()
    return result


def text(response: httpx.Response) -> str:
    """An answer read as text."""
    return response.text


def saved(dest: Path) -> Callable[[httpx.Response], Path]:
    """A download: the answer was streamed into ``dest``."""
    return lambda _response: dest


def operation(operation_id: str) -> Callable[[Callable[P, Call[T]]], Callable[P, Call[T]]]:
    """Mark a builder with the OpenAPI operation it implements."""

    def mark(builder: Callable[P, Call[T]]) -> Callable[P, Call[T]]:
        builder.operation_id = operation_id  # type: ignore[attr-defined]
        return builder

    return mark


def file_field(name: str, source: Path | str) -> FileField:
    """A multipart file part read from a path."""
    file = Path(source)
    return (name, (file.name, file.read_bytes(), "application/octet-stream"))
