# SPDX-License-Identifier: Apache-2.0
"""A raw websocket recorder: every frame with its time, in the reference transcripts' format."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp

Frame = dict[str, Any]


def binary_facts(data: bytes) -> Frame:
    """What the transcripts keep of a binary frame (its header, metadata and image magic)."""
    facts: Frame = {"kind": "binary", "len": len(data), "first8_hex": data[:8].hex()}
    if len(data) >= 8:
        event, word = struct.unpack_from(">II", data, 0)
        facts["event_type_u32be"] = event
        image = data[8:]
        if event == 4 and 8 + word <= len(data):
            with contextlib.suppress(ValueError):
                facts["metadata"] = json.loads(data[8 : 8 + word])
            image = data[8 + word :]
        facts["image_magic"] = image[:4].hex()
    return facts


class WsCapture:
    """One websocket (``clientId`` optional) whose frames are kept in :attr:`frames`."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, client_id: str | None, *, preview_metadata: bool = False
    ) -> None:
        query = f"?clientId={client_id}" if client_id else ""
        self.url = base_url.replace("http://", "ws://").replace("https://", "wss://") + "/ws" + query
        self.client_id = client_id
        self.frames: list[Frame] = []
        self._session = session
        self._preview_metadata = preview_metadata
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._t0 = time.monotonic()

    async def __aenter__(self) -> WsCapture:
        self._ws = await self._session.ws_connect(self.url, heartbeat=None)
        if self._preview_metadata:
            await self._ws.send_str(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the socket and stop reading."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            t = round(time.monotonic() - self._t0, 4)
            if msg.type == aiohttp.WSMsgType.TEXT:
                frame: Frame = {"t": t, "kind": "text", "msg": json.loads(msg.data)}
            elif msg.type == aiohttp.WSMsgType.BINARY:
                frame = {"t": t, **binary_facts(msg.data)}
            else:
                continue
            async with self._changed:
                self.frames.append(frame)
                self._changed.notify_all()

    def note(self, text: str) -> None:
        """Record what the client did, between the frames."""
        self.frames.append({"t": round(time.monotonic() - self._t0, 4), "kind": "client_note", "note": text})

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout_s: float = 120.0) -> Frame:
        """The first frame (already seen or to come) that matches."""
        async with self._changed:
            found: list[Frame] = []

            def match() -> bool:
                found[:] = [f for f in self.frames if predicate(f)][:1]
                return bool(found)

            await asyncio.wait_for(self._changed.wait_for(match), timeout_s)
            return found[0]


def is_msg(kind: str, prompt_id: str | None = None, **data: Any) -> Callable[[Frame], bool]:
    """Predicate: a text frame of ``kind`` (about ``prompt_id``, with these data values)."""

    def check(frame: Frame) -> bool:
        msg = frame.get("msg") if frame.get("kind") == "text" else None
        if not msg or msg.get("type") != kind:
            return False
        payload = msg.get("data") or {}
        if prompt_id is not None and payload.get("prompt_id") != prompt_id:
            return False
        return all(payload.get(k, object()) == v for k, v in data.items())

    return check
