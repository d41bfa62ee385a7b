# SPDX-License-Identifier: Apache-2.0
"""The stand-in's websocket clients and ComfyUI's delivery rules.

* A frame for ``sid=None`` goes to every socket; for a sid, only to the socket registered
  under it (nothing if none).
* A new socket with a ``clientId`` already registered replaces it; the replaced socket gets
  nothing more. When any socket of a sid closes, the sid is unregistered — ComfyUI does this
  unconditionally, so an old socket closing late unregisters its replacement too.
* A client that sends ``feature_flags`` with ``supports_preview_metadata`` first gets the
  server's flags back and previews with metadata (binary event 4); others get event 1.
"""

from __future__ import annotations

import json
import logging
import struct
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger(__name__)


def legacy_preview(image: bytes, mime: str) -> bytes:
    """Binary event 1: u32 type, u32 format (1 JPEG, 2 PNG), image."""
    return struct.pack(">II", 1, 2 if mime == "image/png" else 1) + image


def metadata_preview(image: bytes, mime: str, metadata: dict[str, Any]) -> bytes:
    """Binary event 4: u32 type, u32 metadata length, metadata JSON, image."""
    meta = json.dumps({**metadata, "image_type": mime}).encode()
    return struct.pack(">II", 4, len(meta)) + meta + image


class SocketHub:
    """Registered sockets by sid, with ComfyUI's routing rules."""

    def __init__(self, features: dict[str, Any]) -> None:
        self.features = features
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.flags: dict[str, dict[str, Any]] = {}
        self.every: set[web.WebSocketResponse] = set()
        self.blocked = False

    async def serve(self, request: web.Request, on_connect: Callable[[str], Awaitable[None]]) -> web.StreamResponse:
        """Handle ``/ws`` until the client goes."""
        if self.blocked:
            return web.Response(status=503, text="stand-in: websockets are blocked")
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        sid = request.query.get("clientId", "") or uuid.uuid4().hex
        self.sockets.pop(sid, None)
        self.sockets[sid] = ws
        self.flags[sid] = {}
        self.every.add(ws)
        try:
            await on_connect(sid)
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and first:
                    await self._first_message(sid, ws, msg.data)
                first = False
        finally:
            self.every.discard(ws)
            self.sockets.pop(sid, None)
            self.flags.pop(sid, None)
        return ws

    async def _first_message(self, sid: str, ws: web.WebSocketResponse, text: str) -> None:
        try:
            data = json.loads(text)
        except ValueError:
            return
        if isinstance(data, dict) and data.get("type") == "feature_flags":
            self.flags[sid] = dict(data.get("data") or {})
            await self._send(ws, {"type": "feature_flags", "data": self.features})

    def wants_metadata(self, sid: str) -> bool:
        """Whether this client announced ``supports_preview_metadata``."""
        return bool(self.flags.get(sid, {}).get("supports_preview_metadata"))

    async def send_json(self, kind: str, data: dict[str, Any], sid: str | None) -> None:
        """Send a JSON frame to ``sid`` (or to everyone when None)."""
        message = {"type": kind, "data": data}
        for ws in self._targets(sid):
            await self._send(ws, message)

    async def send_preview(self, image: bytes, mime: str, metadata: dict[str, Any], sid: str | None) -> None:
        """Send a preview in the encoding each target client asked for."""
        for target_sid, ws in list(self.sockets.items()):
            if sid is not None and target_sid != sid:
                continue
            frame = (
                metadata_preview(image, mime, metadata)
                if self.wants_metadata(target_sid)
                else legacy_preview(image, mime)
            )
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("stand-in: preview send failed: %s", exc)

    def _targets(self, sid: str | None) -> list[web.WebSocketResponse]:
        if sid is None:
            return list(self.sockets.values())
        ws = self.sockets.get(sid)
        return [ws] if ws is not None else []

    @staticmethod
    async def _send(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
        try:
            await ws.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("stand-in: send failed: %s", exc)

    async def close_all(self) -> None:
        """Close every socket (server side)."""
        for ws in list(self.every):
            await ws.close()
