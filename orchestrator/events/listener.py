"""The process's one LISTEN connection: routes Postgres notifications to in-process handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable

import asyncpg

log = logging.getLogger(__name__)

NotificationHandler = Callable[[str], None]
ReconnectHandler = Callable[[], None]

# how the connection names itself in pg_stat_activity: one per atelier process (serve or worker)
LISTENER_APPLICATION_NAME = "atelier-listener"


class PgListener:
    """Holds one asyncpg connection that LISTENs on a few channels, reconnecting with backoff.

    Handlers run synchronously in the event loop and must not block. After a reconnect every
    reconnect handler is called, because notifications sent while disconnected are gone; their
    owners catch up from the tables.

    The connection is also lent to the event feed for its small, ordered reads (``connection``),
    so notification delivery and the reads that follow it share one session.
    """

    def __init__(self, dsn: str, channels: Iterable[str], *, health_interval_s: float = 10.0) -> None:
        self._dsn = dsn
        self._channels = tuple(channels)
        self._health_interval_s = health_interval_s
        self._handlers: dict[str, list[NotificationHandler]] = defaultdict(list)
        self._reconnect_handlers: list[ReconnectHandler] = []
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.connection_lock = asyncio.Lock()

    def on(self, channel: str, handler: NotificationHandler) -> None:
        """Call ``handler(payload)`` for every notification on ``channel``."""
        if channel not in self._channels:
            raise ValueError(f"not listening on {channel!r}")
        self._handlers[channel].append(handler)

    def on_reconnect(self, handler: ReconnectHandler) -> None:
        """Call ``handler()`` after the connection was lost and came back."""
        self._reconnect_handlers.append(handler)

    @property
    def connection(self) -> asyncpg.Connection:
        """The live connection (hold ``connection_lock`` while querying on it)."""
        if self._conn is None or self._conn.is_closed():
            raise ConnectionError("the listener is not connected")
        return self._conn

    async def start(self) -> None:
        """Connect and listen; returns once the first connection is up."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name="pg-listener")

    async def wait_connected(self) -> None:
        """Wait until a connection is up (immediately when it is)."""
        await self._connected.wait()

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": LISTENER_APPLICATION_NAME})
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(lambda _conn: self._mark_lost())
        self._conn = conn
        self._lost.clear()
        self._connected.set()

    def _mark_lost(self) -> None:
        self._connected.clear()
        self._lost.set()

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("notification handler for %s failed", channel)

    async def _supervise(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_interval_s):
                    await self._lost.wait()
            if not self._lost.is_set() and await self._healthy():
                continue
            self._mark_lost()
            await self._reconnect()
            for handler in self._reconnect_handlers:
                handler()

    async def _healthy(self) -> bool:
        try:
            async with self.connection_lock, asyncio.timeout(self._health_interval_s):
                await self.connection.fetchval("SELECT 1")
            return True
        except Exception as exc:  # whatever broke, the answer is "reconnect"; this loop must not die
            log.warning("the LISTEN connection stopped answering (%r)", exc)
            return False

    async def _reconnect(self) -> None:
        delay = 0.1
        if self._conn is not None:
            self._conn.terminate()
        while True:
            try:
                await self._connect()
                log.info("LISTEN connection re-established")
                return
            except Exception as exc:  # refused, starting up, recovering, timed out: try again later
                log.warning("LISTEN reconnect failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)
