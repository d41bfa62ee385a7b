"""A minimal SSE reader for tests: parses frames from an aiohttp response."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class SseEvent:
    """One SSE message."""

    id: int | None
    event: str
    data: dict[str, Any]


async def iter_sse(response: aiohttp.ClientResponse) -> AsyncIterator[SseEvent]:
    """Yield events (comments and pings skipped) until the server ends the stream."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield SseEvent(
                    id=int(fields["id"]) if "id" in fields else None,
                    event=fields.get("event", "message"),
                    data=json.loads(fields["data"]),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


async def collect(
    session: aiohttp.ClientSession, url: str, *, headers: dict[str, str] | None = None, limit: int | None = None
) -> list[SseEvent]:
    """Read a stream until it ends (or ``limit`` events arrived)."""
    out: list[SseEvent] = []
    async with session.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        async for event in iter_sse(response):
            out.append(event)
            if limit is not None and len(out) >= limit:
                break
    return out
