"""A TCP proxy that drops connections in the middle of an SSE stream, the way a flaky network does.

Connection ``k`` (counted from 0) is cut after ``cuts[k]`` complete events have passed, in the middle of the
next one (its first bytes are forwarded, the rest never is); later connections pass untouched. The request
head of every connection is kept, so a test can check what the client asked for when it came back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

EVENT_START = b"id: "


@dataclass
class CuttingProxy:
    """Listens on a loopback port and forwards to ``upstream_port``."""

    upstream_port: int
    cuts: list[int]
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        index = len(self.requests)
        self.requests.append(b"")
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        cut = self.cuts[index] if index < len(self.cuts) else None
        upward = asyncio.create_task(self._client_to_upstream(reader, upstream_writer, index))
        try:
            await self._upstream_to_client(upstream_reader, writer, cut)
        finally:
            upward.cancel()
            await asyncio.gather(upward, return_exceptions=True)
            for w in (writer, upstream_writer):
                w.transport.abort()  # an abrupt end, no orderly close of the HTTP message

    async def _client_to_upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while data := await reader.read(65536):
            if len(self.requests[index]) < 8192:
                self.requests[index] += data
            writer.write(data)
            await writer.drain()

    async def _upstream_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: int | None
    ) -> None:
        seen = 0
        while data := await reader.read(65536):
            if cut is not None:
                position = -1
                for _ in range(data.count(EVENT_START)):
                    position = data.index(EVENT_START, position + 1)
                    if seen == cut:
                        writer.write(data[: position + len(EVENT_START) + 3])  # a torn frame: "id: 12" and no more
                        await writer.drain()
                        return
                    seen += 1
            writer.write(data)
            await writer.drain()

    def last_event_ids(self) -> list[str | None]:
        """The Last-Event-ID each connection sent (None when it sent none)."""
        found: list[str | None] = []
        for head in self.requests:
            value = None
            for line in head.split(b"\r\n"):
                name, _, rest = line.partition(b":")
                if name.strip().lower() == b"last-event-id":
                    value = rest.strip().decode()
            found.append(value)
        return found
