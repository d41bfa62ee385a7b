"""Issue 8, item 2: the body reader reads to the end of the body (or past the limit), however it arrives."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp import StreamReader, web
from aiohttp.test_utils import make_mocked_request
from pydantic import BaseModel, ConfigDict

from orchestrator.api.bodies import read_body, read_json_body
from orchestrator.app_keys import SETTINGS
from orchestrator.errors import PayloadTooLarge, ValidationFailed
from orchestrator.settings import Settings


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str


def _request(first: bytes, rest: list[bytes], *, content_length: int | None = None) -> web.Request:
    """A request whose body has only ``first`` when the handler starts; ``rest`` arrives afterwards."""
    protocol = mock.Mock(_reading_paused=False)
    stream = StreamReader(protocol, limit=2**16, loop=asyncio.get_running_loop())
    stream.feed_data(first)

    def arrive() -> None:
        for piece in rest:
            stream.feed_data(piece)
        stream.feed_eof()

    asyncio.get_running_loop().call_soon(arrive)
    headers = {"Content-Type": "application/json"}
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    app = web.Application()
    app[SETTINGS] = Settings(max_json_body_bytes=1 << 20)
    return make_mocked_request("POST", "/v1/x", headers=headers, payload=stream, app=app)


async def test_a_json_body_that_arrives_in_pieces_is_read_whole() -> None:
    body = b'{"prompt": "' + b"a" * 300_000 + b'"}'
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    request = _request(pieces[0], pieces[1:], content_length=len(body))
    parsed = await read_json_body(request, _Body)
    assert len(parsed.prompt) == 300_000


async def test_a_body_in_pieces_past_the_limit_is_413() -> None:
    request = _request(b"x" * 1000, [b"x" * 1000] * 5)
    with pytest.raises(PayloadTooLarge):
        await read_body(request, 4000)


async def test_a_body_exactly_at_the_limit_is_read() -> None:
    request = _request(b"x" * 1000, [b"x" * 1000] * 3)
    assert len(await read_body(request, 4000)) == 4000


async def test_validation_still_names_the_field_after_a_piecewise_read() -> None:
    request = _request(b'{"prompt": "a", ', [b'"other": 1}'])
    with pytest.raises(ValidationFailed) as failed:
        await read_json_body(request, _Body)
    assert [e["field"] for e in failed.value.errors] == ["other"]
