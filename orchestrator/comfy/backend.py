# SPDX-License-Identifier: Apache-2.0
"""One ComfyUI server as the pool sees it: its client, its websocket, health, load and caches."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import aiohttp

from orchestrator.comfy.client import ComfyClient
from orchestrator.comfy.connection import ComfyConnection
from orchestrator.comfy.errors import BackendUnavailable, ComfyError
from orchestrator.comfy.events import EventCallback, RunResult, RunSucceeded
from orchestrator.comfy.run import PromptRun, RunOptions
from orchestrator.comfy.selection import Candidate

log = logging.getLogger(__name__)


#: Where ComfyUI's own nodes live (``python_module`` in ``/object_info``); custom nodes are ``custom_nodes.*``.
_COMFY_OWN_MODULES = frozenset({"nodes", "comfy_extras"})


class Backend:
    """A ComfyUI server: ``healthy`` (answers /system_stats and its websocket is open), ``ready``
    (healthy and warmed up), our prompts ``in_flight`` on it, and what it last ran."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        client_id: str,
        *,
        run_options: RunOptions | None = None,
        request_timeout_s: float = 30.0,
        backoff_max_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.client = ComfyClient(self.url, session, client_id, timeout_s=request_timeout_s)
        self.connection = ComfyConnection(self.url, session, client_id, backoff_max_s=backoff_max_s)
        self.run_options = run_options or RunOptions()
        self.probe_ok = False
        self.ready = False
        self.warmed = False
        self.system_stats: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.last_probe_at: float | None = None
        self.in_flight = 0
        self.last_model_key: Hashable | None = None
        self._object_info: dict[str, Any] | None = None
        self._models: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return f"Backend({self.url!r}, healthy={self.healthy}, ready={self.ready}, load={self.candidate().load})"

    @property
    def healthy(self) -> bool:
        """Answers HTTP and has its websocket open."""
        return self.probe_ok and self.connection.connected

    def candidate(self) -> Candidate:
        """This backend for :func:`~orchestrator.comfy.selection.choose_backend`."""
        models = {folder: frozenset(names) for folder, names in self._models.items()} or None
        return Candidate(
            name=self.url,
            healthy=self.healthy,
            ready=self.ready and self.healthy,
            in_flight=self.in_flight,
            queue_remaining=self.connection.queue_remaining,
            last_model_key=self.last_model_key,
            models=models,
        )

    async def probe(self, timeout_s: float) -> bool:
        """``GET /system_stats``; records the outcome. A failed probe makes the backend unready."""
        self.last_probe_at = time.monotonic()
        try:
            self.system_stats = await self.client.system_stats(timeout_s=timeout_s)
        except ComfyError as exc:
            if self.probe_ok:
                log.warning("comfy backend %s is unhealthy: %s", self.url, exc)
            self.probe_ok = False
            self.ready = False
            self.warmed = False
            self.last_error = str(exc)
            return False
        if not self.probe_ok:
            log.info(
                "comfy backend %s answers (ComfyUI %s)",
                self.url,
                self.system_stats.get("system", {}).get("comfyui_version", "?"),
            )
        self.probe_ok = True
        self.last_error = None
        return True

    async def warm_up(self, graph: Mapping[str, Any] | None) -> bool:
        """Run the warm-up prompt (if any); the backend is ready once it succeeded."""
        if graph is None:
            self.warmed = self.ready = True
            return True
        try:
            result = await self.run(graph, str(uuid.uuid4()))
        except (ComfyError, TimeoutError) as exc:
            log.warning("comfy backend %s: warm-up failed: %s", self.url, exc)
            self.last_error = f"warm-up failed: {exc}"
            return False
        if not isinstance(result, RunSucceeded):
            log.warning("comfy backend %s: warm-up did not succeed: %s", self.url, result)
            self.last_error = f"warm-up did not succeed: {type(result).__name__}"
            return False
        self.warmed = self.ready = True
        return True

    async def run(
        self,
        graph: Mapping[str, Any],
        prompt_id: str,
        on_event: EventCallback | None = None,
        *,
        model_key: Hashable | None = None,
        run: PromptRun | None = None,
        on_submitted: Callable[[], None] | None = None,
    ) -> RunResult:
        """Run one prompt here, counting it in :attr:`in_flight`; remembers ``model_key`` afterwards;
        ``on_submitted`` is called once ComfyUI queued the prompt. The run ends once the graph's output nodes
        (:meth:`output_nodes`) all said ``executed``, or at ComfyUI's terminal message."""
        run = run or PromptRun(
            self.client,
            self.connection,
            graph,
            prompt_id,
            on_event,
            self.run_options,
            on_submitted=on_submitted,
            output_nodes=self.output_nodes(graph),
        )
        self.in_flight += 1
        try:
            result = await run.run()
        except BackendUnavailable:
            self.probe_ok = False
            self.ready = False
            self.warmed = False
            raise
        finally:
            self.in_flight -= 1
        if model_key is not None and isinstance(result, RunSucceeded):
            self.last_model_key = model_key
        return result

    def output_nodes(self, graph: Mapping[str, Any]) -> tuple[str, ...]:
        """The graph's output nodes by this backend's ``/object_info`` as last read (ComfyUI runs those and what
        they depend on), when a run may end at the last one's ``executed`` (see :mod:`orchestrator.comfy.record`).

        None while ``/object_info`` has not been read or lacks a class the graph uses, and none for a graph where
        ComfyUI may still do something after that message: a node with an intermediate output (ComfyUI sends its
        cached UI just before ``execution_success``), or an output node from outside ComfyUI's own modules (a
        custom one may expand into more nodes after it said ``executed``)."""
        info = self._object_info
        if info is None:
            return ()
        outputs = []
        for node_id, node in graph.items():
            spec = info.get(str(node.get("class_type"))) if isinstance(node, Mapping) else None
            if not isinstance(spec, Mapping) or spec.get("has_intermediate_output") is True:
                return ()
            if spec.get("output_node") is True:
                if str(spec.get("python_module", "")).split(".")[0] not in _COMFY_OWN_MODULES:
                    return ()
                outputs.append(str(node_id))
        return tuple(outputs)

    async def object_info(self, *, refresh: bool = False) -> dict[str, Any]:
        """The backend's ``/object_info`` (cached; ``refresh`` to fetch again, e.g. after installing nodes)."""
        if self._object_info is None or refresh:
            self._object_info = await self.client.object_info()
        return self._object_info

    async def models(self, folder: str, *, refresh: bool = False) -> list[str]:
        """Model files the backend offers in ``folder`` (cached; ``refresh`` after adding files)."""
        if folder not in self._models or refresh:
            self._models[folder] = await self.client.models(folder)
        return list(self._models[folder])

    def status(self) -> dict[str, Any]:
        """Facts for ``GET /v1/backends`` and logs."""
        system = (self.system_stats or {}).get("system", {})
        return {
            "url": self.url,
            "healthy": self.healthy,
            "ready": self.ready and self.healthy,
            "in_flight": self.in_flight,
            "queue_remaining": self.connection.queue_remaining,
            "comfyui_version": system.get("comfyui_version"),
            "devices": [d.get("name") for d in (self.system_stats or {}).get("devices", [])],
            "models": {folder: list(names) for folder, names in self._models.items()},
            "last_error": self.last_error,
            "websocket": self.connection.describe(),
        }

    async def close(self) -> None:
        """Close the websocket."""
        await self.connection.close()
