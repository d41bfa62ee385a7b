# SPDX-License-Identifier: Apache-2.0
"""A pool of ComfyUI backends: health probes, warm-up, load and model-affinity aware choice, failover."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection, Hashable, Mapping, Sequence
from typing import Any

import aiohttp

from orchestrator.comfy.backend import Backend
from orchestrator.comfy.connection import ComfyConnection
from orchestrator.comfy.errors import BackendUnavailable, NoBackendAvailable
from orchestrator.comfy.events import EventCallback, RunResult
from orchestrator.comfy.run import RunOptions
from orchestrator.comfy.selection import choose_backend

log = logging.getLogger(__name__)

RetryCallback = Callable[[int, BackendUnavailable], Awaitable[None]]


def default_client_id() -> str:
    """A websocket client id unique to this process (ComfyUI routes a prompt's messages by it)."""
    return f"atelier-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class BackendPool:
    """Several ComfyUI servers used as one.

    ``start()`` opens one websocket per backend, probes ``/system_stats`` every
    ``probe_interval_s`` and runs ``warmup_graph`` (if given) on each backend that becomes
    healthy; it is ready once that succeeded. :meth:`choose` applies
    :func:`~orchestrator.comfy.selection.choose_backend`.
    """

    def __init__(
        self,
        urls: Sequence[str],
        session: aiohttp.ClientSession,
        *,
        client_id: str | None = None,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 3.0,
        connect_timeout_s: float = 5.0,
        warmup_graph: Mapping[str, Any] | None = None,
        run_options: RunOptions | None = None,
        affinity_slack: int = 1,
        reconnect_max_s: float = 10.0,
    ) -> None:
        if not urls:
            raise ValueError("a backend pool needs at least one URL")
        self.client_id = client_id or default_client_id()
        self.backends = [
            Backend(url, session, self.client_id, run_options=run_options, backoff_max_s=reconnect_max_s)
            for url in urls
        ]
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.warmup_graph = warmup_graph
        self.affinity_slack = affinity_slack
        self._probe_task: asyncio.Task[None] | None = None
        self._warmups: dict[str, asyncio.Task[bool]] = {}
        self._listeners: list[Callable[[], None]] = []
        self._connected: dict[str, bool] = {}
        for backend in self.backends:
            backend.connection.on_state_change = self._socket_changed

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (synchronously) whenever backends may have changed state (probe, warm-up, socket)."""
        self._listeners.append(callback)

    def _socket_changed(self, connection: ComfyConnection) -> None:
        """Sockets also report queue lengths; only an opened or closed socket changes what can take prompts."""
        if self._connected.get(connection.base_url) != connection.connected:
            self._connected[connection.base_url] = connection.connected
            self._changed()

    def _changed(self) -> None:
        for callback in self._listeners:
            try:
                callback()
            except Exception:  # a listener's bug must not stop the probes
                log.exception("comfy pool: state listener failed")

    @property
    def ready(self) -> bool:
        """Whether at least one backend can take prompts."""
        return any(b.ready and b.healthy for b in self.backends)

    def backend(self, url: str) -> Backend:
        """The backend with this URL."""
        for backend in self.backends:
            if backend.url == url.rstrip("/"):
                return backend
        raise KeyError(url)

    async def start(self) -> None:
        """Connect every backend, probe them once, start warm-ups and the periodic probe."""
        for backend in self.backends:
            backend.connection.start()
        await asyncio.gather(*(b.connection.wait_connected(self.connect_timeout_s) for b in self.backends))
        await self.check(wait_warmup=False)
        self._probe_task = asyncio.create_task(self._probe_loop(), name="comfy-pool-probe")

    async def close(self) -> None:
        """Stop probing and warming up; close every websocket."""
        tasks = [t for t in [self._probe_task, *self._warmups.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._probe_task = None
        self._warmups.clear()
        await asyncio.gather(*(b.close() for b in self.backends))

    async def check(self, *, wait_warmup: bool = True) -> None:
        """One probe round; warm-ups are started for newly healthy backends (and awaited if asked)."""
        await asyncio.gather(*(b.probe(self.probe_timeout_s) for b in self.backends))
        for backend in self.backends:
            if backend.healthy and not backend.warmed and backend.url not in self._warmups:
                task = asyncio.create_task(backend.warm_up(self.warmup_graph), name=f"comfy-warmup {backend.url}")
                self._warmups[backend.url] = task
                task.add_done_callback(functools.partial(self._warmup_done, backend.url))
        self._changed()
        if wait_warmup and self._warmups:
            await asyncio.gather(*self._warmups.values(), return_exceptions=True)

    def _warmup_done(self, url: str, _task: asyncio.Task[bool]) -> None:
        self._warmups.pop(url, None)
        self._changed()

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval_s)
            try:
                await self.check(wait_warmup=False)
            except Exception:  # keep probing whatever one round did
                log.exception("comfy pool: probe round failed")

    def choose(
        self,
        model_key: Hashable | None = None,
        *,
        exclude: Collection[str] = (),
        required_models: Mapping[str, Collection[str]] | None = None,
    ) -> Backend:
        """The backend to run the next prompt on; :class:`NoBackendAvailable` if none can."""
        picked = choose_backend(
            [b.candidate() for b in self.backends],
            model_key,
            exclude=exclude,
            required_models=required_models,
            affinity_slack=self.affinity_slack,
        )
        if picked is None:
            states = ", ".join(f"{b.url}: healthy={b.healthy} ready={b.ready}" for b in self.backends)
            raise NoBackendAvailable(f"no ComfyUI backend can take the prompt ({states})")
        return self.backend(picked.name)

    async def run(
        self,
        graph: Mapping[str, Any],
        prompt_id: str,
        on_event: EventCallback | None = None,
        *,
        model_key: Hashable | None = None,
        attempts: int = 1,
        on_retry: RetryCallback | None = None,
        required_models: Mapping[str, Collection[str]] | None = None,
    ) -> RunResult:
        """Run a prompt on the best backend (``result.backend`` says which).

        With ``attempts`` > 1, a backend that is unreachable or lost mid-run is excluded and the
        prompt is run again (same ``prompt_id``) elsewhere; ``on_retry(attempt, error)`` is awaited
        first so the caller can record it. The last failure is raised.
        """
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        excluded: list[str] = []
        for attempt in range(1, attempts + 1):
            backend = self.choose(model_key, exclude=excluded, required_models=required_models)
            try:
                return await backend.run(graph, prompt_id, on_event, model_key=model_key)
            except BackendUnavailable as exc:
                if attempt >= attempts:
                    raise
                log.warning("comfy pool: %s failed prompt %s (%s); trying another backend", backend.url, prompt_id, exc)
                excluded.append(backend.url)
                if on_retry is not None:
                    await on_retry(attempt, exc)
        raise AssertionError("unreachable")

    async def offered_models(self, folder: str, *, refresh: bool = False) -> dict[str, list[str]]:
        """Model files each healthy backend offers in ``folder``."""
        healthy = [b for b in self.backends if b.healthy]
        lists = await asyncio.gather(*(b.models(folder, refresh=refresh) for b in healthy), return_exceptions=True)
        return {b.url: names for b, names in zip(healthy, lists, strict=True) if isinstance(names, list)}

    def status(self) -> list[dict[str, Any]]:
        """Per-backend facts (``GET /v1/backends``)."""
        return [b.status() for b in self.backends]
