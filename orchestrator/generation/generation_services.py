# SPDX-License-Identifier: Apache-2.0
"""The generation feature's per-process services: HTTP session, backend pool, local ComfyUIs, catalog.

Backends are the running servers in ``ATELIER_COMFYUI_URLS`` plus, when ``ATELIER_COMFYUI_DIR`` and
``ATELIER_COMFYUI_PYTHON`` are set, ``ATELIER_COMFYUI_LOCAL_INSTANCES`` supervised local ComfyUIs (our
models store wired in through extra_model_paths.yaml; their input/output/temp/user folders under
``<var_dir>/comfyui`` for the first, ``<var_dir>/comfyui-<n>/comfyui`` for the others). Local instances start
in the background, so the API answers at once; /readyz says when a backend is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from comfy_workflows.markers import ATELIER_NODE_CLASSES
from comfy_workflows.templates import get_template
from comfy_workflows.validation import DEFAULT_ALLOWED_CLASSES, RawWorkflowPolicy
from orchestrator.app_keys import METRICS, SETTINGS
from orchestrator.comfy import BackendPool, LocalComfyConfig, LocalComfyError, LocalComfyUI, RunOptions
from orchestrator.comfy.backoff import backoff_delay
from orchestrator.errors import ServiceUnavailable
from orchestrator.generation.catalog import ModelCatalog
from orchestrator.generation.checking import GraphChecker
from orchestrator.metrics import Metrics
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0


NOT_CONFIGURED = "generation is not configured here (set ATELIER_COMFYUI_URLS or ATELIER_COMFYUI_DIR)"


@dataclass(frozen=True)
class ComfyBackends:
    """The ComfyUI side of a process that generates: the backend pool, and the checker that validates graphs
    against the pool's /object_info."""

    pool: BackendPool
    checker: GraphChecker


@dataclass
class GenerationServices:
    """What acceptance, the job kind and the endpoints share. ``comfy`` is None where no ComfyUI is configured."""

    catalog: ModelCatalog
    policy: RawWorkflowPolicy
    settings: Settings
    comfy: ComfyBackends | None = None
    local: list[LocalComfyUI] = field(default_factory=list)

    def backends(self) -> ComfyBackends:
        """The pool and checker; 503 where this process has no ComfyUI configured."""
        if self.comfy is None:
            raise ServiceUnavailable(NOT_CONFIGURED)
        return self.comfy

    def local_home(self, url: str) -> Path | None:
        """The folder (with input/output/temp) of the local ComfyUI at ``url``; None for other backends."""
        for instance in self.local:
            if instance.url == url:
                return instance.home
        return None

    def output_dir(self, url: str) -> Path | None:
        """The folder the ComfyUI at ``url`` writes its outputs to, when this process can read it: a local
        ComfyUI's, or one configured in ``ATELIER_COMFYUI_OUTPUT_DIRS``; None otherwise."""
        home = self.local_home(url)
        if home is not None:
            return home / "output"
        for pair in self.settings.comfyui_output_dirs:
            configured, _, folder = pair.partition("=")
            if configured.rstrip("/") == url.rstrip("/"):
                return Path(folder)
        return None

    def backend_states(self) -> list[dict[str, Any]]:
        """Per backend: the pool's facts plus, for local instances, the process."""
        if self.comfy is None:
            return []
        local = {instance.url: instance for instance in self.local}
        states = []
        for state in self.comfy.pool.status():
            instance = local.get(state["url"])
            if instance is not None:
                state["local"] = {
                    "pid": instance.pid,
                    "restarts": instance.restarts,
                    "log": str(instance.log_path),
                }
            states.append(state)
        return states


GENERATION = web.AppKey("generation", GenerationServices)


def local_instances(settings: Settings) -> list[LocalComfyUI]:
    """The local ComfyUIs to supervise (none unless both the directory and its Python are set)."""
    if settings.comfyui_dir is None or settings.comfyui_python is None:
        return []
    extra = tuple(shlex.split(settings.comfyui_extra_args))
    instances = []
    for index in range(settings.comfyui_local_instances):
        var_dir = settings.var_dir if index == 0 else settings.var_dir / f"comfyui-{index + 1}"
        config = LocalComfyConfig(
            comfy_dir=settings.comfyui_dir,
            python=settings.comfyui_python,
            models_dir=settings.models_dir,
            var_dir=var_dir,
            cpu=settings.comfyui_cpu,
            extra_args=extra,
        )
        instances.append(LocalComfyUI(config))
    return instances


def raw_workflow_policy(settings: Settings) -> RawWorkflowPolicy:
    """The allowlists for submitted workflows: ComfyUI's plain nodes, our node pack, and what settings add."""
    ours = ATELIER_NODE_CLASSES | {"StringConcatenate"}  # the pack's trigger word is wired into prompts with it
    return RawWorkflowPolicy(
        allowed_classes=DEFAULT_ALLOWED_CLASSES | ours | frozenset(settings.raw_workflow_extra_classes),
        allowed_url_hosts=frozenset(settings.raw_workflow_url_hosts),
    )


async def warmup_graph(catalog: ModelCatalog, base_model: str | None) -> dict[str, Any] | None:
    """The prompt a backend must run before it counts as ready: one 64x64 step on ``base_model`` (its
    weights are then loaded, so the first real request does not pay for that); None without one."""
    if base_model is None:
        return None
    resolved = await catalog.resolve(base_model)
    template = get_template("txt2img")
    request = template.parse(
        {"template": "txt2img", "base_model": base_model, "prompt": "warm-up", "width": 64, "height": 64, "steps": 1}
    )
    built = template.build(request, resolved.spec, filename_prefix="atelier/warm-up", seed_source=lambda: 0)
    return built.graph


async def _start_local(instance: LocalComfyUI, pool: BackendPool) -> None:
    """Start a local ComfyUI (retrying with backoff when it cannot start), then connect and probe at once
    (instead of waiting for the websocket's reconnect backoff and the next probe round)."""
    attempt = 0
    while True:
        try:
            await instance.start()
            break
        except LocalComfyError as exc:
            delay = backoff_delay(attempt, initial=2.0, maximum=60.0)
            log.error("local ComfyUI did not start (retrying in %.0f s): %s", delay, exc)
            attempt += 1
            await asyncio.sleep(delay)
    connection = pool.backend(instance.url).connection
    if not connection.connected:
        await connection.close()
        connection.start()
        await connection.wait_connected(CONNECT_TIMEOUT_S)
    await pool.check()


async def generation_services(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the pool (and local ComfyUIs) for the life of the app."""
    settings = app[SETTINGS]
    services = GenerationServices(
        ModelCatalog(settings.models_dir, settings.model_catalog), raw_workflow_policy(settings), settings
    )
    app[GENERATION] = services
    services.local = local_instances(settings)
    urls = [*settings.comfyui_urls, *(instance.url for instance in services.local)]
    if not urls:
        log.info("no ComfyUI configured: generations are not offered by this process")
        yield
        return
    session = aiohttp.ClientSession()
    options = RunOptions(poll_s=settings.comfyui_poll_s, lost_after_s=settings.comfyui_lost_after_s)
    pool = BackendPool(
        urls,
        session,
        probe_interval_s=settings.comfyui_probe_interval_s,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        run_options=options,
        warmup_graph=await warmup_graph(services.catalog, settings.comfyui_warmup_model),
    )
    services.comfy = ComfyBackends(pool, GraphChecker(pool))
    app[METRICS].scrape_hooks.append(lambda: _report_backends(app[METRICS], pool))
    starting = [asyncio.create_task(_start_local(i, pool), name=f"comfy-local {i.url}") for i in services.local]
    try:
        await pool.start()
        await pool.check()
        yield
    finally:
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        await pool.close()
        for instance in services.local:
            with contextlib.suppress(Exception):
                await instance.stop()
        await session.close()


async def readiness(app: web.Application) -> tuple[bool, Any]:
    """/readyz: at least one backend ready when any is configured; "not configured" passes (no generations here)."""
    comfy = app[GENERATION].comfy
    if comfy is None:
        return True, "not configured"
    states = [{"url": b.url, "healthy": b.healthy, "ready": b.ready and b.healthy} for b in comfy.pool.backends]
    return comfy.pool.ready, {"ready": sum(s["ready"] for s in states), "backends": states}


def _report_backends(metrics: Metrics, pool: BackendPool) -> None:
    """``atelier_backend_up{backend}``: 1 for a healthy, ready ComfyUI."""
    for state in pool.status():
        metrics.backend_up.labels(state["url"]).set(1 if state["ready"] else 0)
