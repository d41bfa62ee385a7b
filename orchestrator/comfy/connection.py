# SPDX-License-Identifier: Apache-2.0
"""One websocket per ComfyUI backend per process, shared by every prompt run on it.

Facts this is built on (recorded from ComfyUI): ``executing``/``execution_*``/``executed``,
``progress`` and previews of a prompt go only to the socket whose ``clientId`` submitted it;
``status`` (queue length) goes to every socket; a new socket with the same ``clientId``
replaces the old one, which then receives nothing; on connecting, that socket gets
``status`` and, if its prompt is running, ``executing`` with only the current node (no
prompt id). Nothing missed while disconnected is replayed, so subscribers are told when
the socket is lost and when it is back, and re-check their prompt through ``/history``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from orchestrator.comfy.backoff import backoff_delay
from orchestrator.comfy.protocol import (
    FEATURE_FLAGS_MESSAGE,
    PreviewFrame,
    WsMessage,
    decode_binary_frame,
    parse_text_frame,
    queue_remaining_of,
)

log = logging.getLogger(__name__)


class ConnectionSignal(enum.Enum):
    """Out-of-band items in a subscription: the socket went away / came (back)."""

    LOST = "lost"
    RESTORED = "restored"
    WAKE = "wake"


SubscriptionItem = WsMessage | PreviewFrame | ConnectionSignal


class Subscription:
    """Messages about one prompt, in arrival order, plus connection signals."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self._queue: asyncio.Queue[SubscriptionItem] = asyncio.Queue()

    def put(self, item: SubscriptionItem) -> None:
        """Deliver an item (called by the connection)."""
        self._queue.put_nowait(item)

    async def get(self, timeout_s: float | None) -> SubscriptionItem | None:
        """The next item, or None when ``timeout_s`` passes without one."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return None


class ComfyConnection:
    """Keeps ``/ws?clientId=<client_id>`` open with backoff, routes frames by prompt id."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        client_id: str,
        *,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 10.0,
        heartbeat_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        preview_metadata: bool = True,
        on_state_change: Callable[[ComfyConnection], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._session = session
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._heartbeat = heartbeat_s
        self._connect_timeout = connect_timeout_s
        self._preview_metadata = preview_metadata
        #: Called (synchronously) when the socket opens or closes and when the queue length changes.
        self.on_state_change = on_state_change
        self._subs: dict[str, list[Subscription]] = {}
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._heard = False
        self._closing = False
        #: ComfyUI's queue length (pending + running, every client) from the last ``status``.
        self.queue_remaining: int | None = None
        #: Our prompt ComfyUI is executing now, as far as the messages tell.
        self.current_prompt: str | None = None
        #: Monotonic time of the last frame received.
        self.last_message_at: float | None = None
        self.connects = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None

    @property
    def ws_url(self) -> str:
        """The websocket address, ``ws(s)://host/ws?clientId=...``."""
        scheme, rest = self.base_url.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/ws?clientId={self.client_id}"

    @property
    def connected(self) -> bool:
        """Whether the socket is open now."""
        return self._connected.is_set()

    @property
    def registered(self) -> bool:
        """Whether ComfyUI has registered the open socket: it has sent something on it (its first frame, the
        ``status`` with our sid, follows the registration). Before that a prompt's messages may go nowhere."""
        return self._heard and self._connected.is_set()

    def start(self) -> None:
        """Start connecting (in the background; returns at once)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"comfy-ws {self.base_url}")

    async def close(self) -> None:
        """Close the socket and stop reconnecting."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._connected.clear()

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the socket is open; False if it is not within ``timeout_s``."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def reconnect(self) -> None:
        """Drop the socket and connect again at once.

        ComfyUI unregisters a client id whenever *any* socket of that id closes, so an old
        socket that the server notices late can silently cut off its replacement; a fresh
        connection re-registers (and gets the running node replayed)."""
        ws = self._ws
        if ws is not None and not ws.closed:
            log.info("comfy ws %s: reconnecting (no messages for a running prompt)", self.base_url)
            await ws.close()

    def subscribe(self, prompt_id: str) -> Subscription:
        """Receive the messages of ``prompt_id`` (subscribe before submitting it)."""
        sub = Subscription(prompt_id)
        self._subs.setdefault(prompt_id, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop receiving for ``sub``."""
        subs = self._subs.get(sub.prompt_id, [])
        if sub in subs:
            subs.remove(sub)
        if not subs:
            self._subs.pop(sub.prompt_id, None)

    def wake(self, prompt_id: str) -> None:
        """Make the subscribers of ``prompt_id`` re-check it now."""
        for sub in self._subs.get(prompt_id, ()):
            sub.put(ConnectionSignal.WAKE)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                connecting = self._session.ws_connect(self.ws_url, heartbeat=self._heartbeat, autoping=True)
                ws = await asyncio.wait_for(connecting, self._connect_timeout)
                async with ws:
                    attempt = 0
                    await self._serve(ws)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.consecutive_failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("comfy ws %s: %s", self.base_url, self.last_error)
            finally:
                self._ws = None
                self._heard = False
                if self._connected.is_set():
                    self._connected.clear()
                    self._signal(ConnectionSignal.LOST)
                    log.info("comfy ws %s: disconnected", self.base_url)
            if self._closing:
                break
            delay = backoff_delay(attempt, initial=self._backoff[0], maximum=self._backoff[1])
            attempt += 1
            await asyncio.sleep(delay)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        if self._preview_metadata:
            await ws.send_str(FEATURE_FLAGS_MESSAGE)
        self.connects += 1
        self.consecutive_failures = 0
        self.last_error = None
        self._connected.set()
        log.info("comfy ws %s: connected (clientId %s)", self.base_url, self.client_id)
        self._signal(ConnectionSignal.RESTORED)
        async for frame in ws:
            self.last_message_at = time.monotonic()
            self._heard = True
            if frame.type == aiohttp.WSMsgType.TEXT:
                message = parse_text_frame(frame.data)
                if message is not None:
                    self.route(message)
            elif frame.type == aiohttp.WSMsgType.BINARY:
                preview = decode_binary_frame(frame.data)
                if preview is not None:
                    self._route(preview.prompt_id or self.current_prompt, preview)
            elif frame.type == aiohttp.WSMsgType.ERROR:
                self.last_error = f"websocket error: {ws.exception()}"
                break

    def route(self, message: WsMessage) -> None:
        """Deliver one parsed text frame to the subscribers of its prompt (the reader calls this)."""
        remaining = queue_remaining_of(message)
        if remaining is not None:
            self.queue_remaining = remaining
            self._notify()
            return
        prompt_id = message.prompt_id
        if message.type == "execution_start" and prompt_id:
            self.current_prompt = prompt_id
        elif prompt_id is None and message.type == "executing":
            prompt_id = self.current_prompt  # the replay a reconnecting socket gets
        if message.is_prompt_done and prompt_id == self.current_prompt:
            self.current_prompt = None
        self._route(prompt_id, message)

    def _route(self, prompt_id: str | None, item: SubscriptionItem) -> None:
        if prompt_id is None:
            return
        for sub in self._subs.get(prompt_id, ()):
            sub.put(item)

    def _signal(self, signal: ConnectionSignal) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.put(signal)
        self._notify()

    def _notify(self) -> None:
        if self.on_state_change is not None:
            try:
                self.on_state_change(self)
            except Exception:  # a listener's bug must not kill the socket
                log.exception("comfy ws %s: state listener failed", self.base_url)

    def describe(self) -> dict[str, Any]:
        """Connection facts for status pages."""
        return {
            "connected": self.connected,
            "queue_remaining": self.queue_remaining,
            "connects": self.connects,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }
