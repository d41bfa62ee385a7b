# SPDX-License-Identifier: Apache-2.0
"""The stand-in ComfyUI server: ComfyUI's HTTP routes and websocket, plus test knobs.

Usage in tests::

    async with StandinComfyUI(StandinOptions(time_scale=0.002)) as comfy:
        ...  # comfy.url, comfy.hold(step=1), await comfy.wait_held(), comfy.release(),
             # await comfy.drop_sockets(block=True), comfy.allow_sockets(),
             # await comfy.die(), await comfy.revive()
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.standin.comfyui.executor import Executor
from tests.standin.comfyui.files import FileStore
from tests.standin.comfyui.recordings import recorded, recorded_warm
from tests.standin.comfyui.routes import Routes
from tests.standin.comfyui.sockets import SocketHub

log = logging.getLogger(__name__)


CORRUPT_LORA = "standin_corrupt_lora.safetensors"


def default_models() -> dict[str, list[str]]:
    """The recorded model lists, plus a LoRA named *corrupt* (loading it fails) if none is recorded."""
    models = {folder: list(names) for folder, names in recorded().models.items()}
    loras = models.setdefault("loras", [])
    if not any("corrupt" in name for name in loras):
        loras.append(CORRUPT_LORA)
    return models


@dataclass
class StandinOptions:
    """Knobs of one stand-in server."""

    #: Recorded node/step durations are multiplied by this (1.0 = as slow as the recording).
    time_scale: float = 0.002
    #: Node and step times of prompts that load nothing, from the model-switch recording (the session the switch
    #: costs come from), instead of the first recordings' (see :func:`~.recordings.recorded_warm`).
    warm_timings: bool = False
    #: Send a preview frame after every sampler step.
    previews: bool = True
    #: Save noise images about as large as generated ones (:func:`~.files.textured_png_bytes`) instead of a
    #: tiny one-colour PNG: what storing a real output costs.
    textured_images: bool = False
    #: Files offered per model folder ("checkpoints", "loras", ...); default: the recorded lists.
    models: dict[str, list[str]] | None = None
    #: Folder for input/output/temp (a temporary folder when None).
    root: Path | None = None
    input_dir: Path | None = None
    output_dir: Path | None = None
    temp_dir: Path | None = None
    #: An ``extra_model_paths.yaml``: model files are listed from its folders at every ``/object_info`` and
    #: ``/models`` request, as ComfyUI rescans its folders (a LoRA trained meanwhile appears). Overrides ``models``.
    model_paths: Path | None = None
    #: Node classes that raise ``RuntimeError(message)`` when executed.
    fail_classes: dict[str, str] = field(default_factory=dict)
    #: More ``/object_info`` entries, as if custom nodes were installed (e.g. our node pack's recording);
    #: they run like any other node (outputs passed on, no messages of their own).
    extra_nodes: dict[str, Any] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    argv: list[str] = field(default_factory=lambda: ["tests.standin.comfyui"])


class StandinComfyUI:
    """A running stand-in on loopback; state (queue, history, cache) is lost by :meth:`die`."""

    def __init__(self, options: StandinOptions | None = None) -> None:
        self.options = options or StandinOptions()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        root = self.options.root
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="comfy-standin-")
            root = Path(self._tmp.name)
        self.models = self.options.models if self.options.models is not None else default_models()
        if self.options.model_paths is not None:
            self.models = {}
            self.rescan()
        self.files = FileStore(
            root, input_dir=self.options.input_dir, output_dir=self.options.output_dir, temp_dir=self.options.temp_dir
        )
        self.port = self.options.port
        #: Requests answered, by method and route (``"GET /history/{prompt_id}"``): tests count round trips.
        self.requests: Counter[str] = Counter()
        #: The next this many ``/view`` requests answer 503, as a proxy in front of a restarting ComfyUI does.
        self.unavailable_views = 0
        self._runner: web.AppRunner | None = None
        self._worker: asyncio.Task[None] | None = None
        self.hub: SocketHub
        self.executor: Executor

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.options.host}:{self.port}"

    def _fresh_state(self) -> web.Application:
        rec = recorded_warm() if self.options.warm_timings else recorded()
        self.hub = SocketHub(rec.features)
        self.executor = Executor(
            self.hub,
            self.files,
            rec,
            time_scale=self.options.time_scale,
            previews=self.options.previews,
            textured_images=self.options.textured_images,
            fail_classes=dict(self.options.fail_classes),
        )
        routes = Routes(self)
        app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[self._count])
        routes.install(app)
        return app

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        route = request.match_info.route.resource
        self.requests[f"{request.method} {route.canonical if route is not None else request.path}"] += 1
        return await handler(request)

    async def start(self) -> str:
        """Listen (on ``port``, or a free one) and start the worker; returns the URL."""
        app = self._fresh_state()
        self.executor.object_info = Routes.object_info_of(self)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.options.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]
        self._worker = asyncio.create_task(self.executor.serve(), name="standin-comfy-worker")
        log.info("stand-in ComfyUI listening on %s", self.url)
        return self.url

    async def stop(self) -> None:
        """Stop serving and forget everything."""
        await self.die()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> StandinComfyUI:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # --- knobs -------------------------------------------------------------------------------

    def hold(self, step: int = 1) -> None:
        """Hold samplers after they report ``step`` until :meth:`release` (or an interrupt)."""
        self.executor.gate.hold(step)

    async def wait_held(self, timeout_s: float = 30.0) -> None:
        """Wait until a sampler is held."""
        await asyncio.wait_for(self.executor.gate.reached.wait(), timeout_s)

    def release(self) -> None:
        """Let held samplers go on."""
        self.executor.gate.release()

    def hold_end(self) -> None:
        """Hold each prompt after its last node ran, before ``execution_success`` and its history entry (the
        real ComfyUI takes a moment there), until :meth:`release_end`."""
        self.executor.end_gate.clear()

    def release_end(self) -> None:
        """Let held prompts end."""
        self.executor.end_gate.set()

    async def drop_sockets(self, *, block: bool = False) -> None:
        """Close every websocket from the server side; with ``block``, refuse new ones (HTTP 503)."""
        self.hub.blocked = block
        await self.hub.close_all()

    def orphan_socket(self, client_id: str) -> None:
        """Unregister a client's socket without closing it (what ComfyUI does when an older socket
        of the same client id closes late): it stays open and receives nothing."""
        self.hub.sockets.pop(client_id, None)

    def allow_sockets(self) -> None:
        """Accept websockets again after ``drop_sockets(block=True)``."""
        self.hub.blocked = False

    async def die(self) -> None:
        """Crash: close sockets, stop the running prompt, refuse connections. State is lost."""
        if self._runner is None:
            return
        self.hub.blocked = True
        await self.hub.close_all()
        await self.executor.stop(self._worker)
        self._worker = None
        await self._runner.cleanup()
        self._runner = None

    async def revive(self) -> str:
        """Start again on the same port with an empty queue, history and cache (a restart)."""
        return await self.start()

    def offered(self, folder: str) -> list[str]:
        """Files offered in a model folder."""
        self.rescan()
        return list(self.models.get(folder, []))

    def rescan(self) -> bool:
        """Re-list the model folders of ``model_paths``; True when they changed."""
        if self.options.model_paths is None:
            return False
        from tests.standin.comfyui.model_paths import models_from_extra_paths

        listed = models_from_extra_paths(self.options.model_paths)
        changed, self.models = listed != self.models, listed
        return changed

    def system_stats(self) -> dict[str, Any]:
        """The recorded ``/system_stats`` with this process's argv."""
        stats = recorded().system_stats
        return {**stats, "system": {**stats["system"], "argv": list(self.options.argv)}}
