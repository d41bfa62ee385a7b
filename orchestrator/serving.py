# SPDX-License-Identifier: Apache-2.0
"""``atelier serve``: the HTTP service on one listening socket until SIGINT/SIGTERM.

The socket is bound once and outlives the application on it: when a first run has just installed an engine,
the application is stopped and built again with the settings that now point at it (see
:mod:`orchestrator.firstrun`). Connections that arrive meanwhile wait in the socket's backlog; SSE clients are
ended as at any shutdown and resume by event id.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from aiohttp import web

from orchestrator.api.health import READINESS_CHECKS
from orchestrator.api.request_log import AccessLogger
from orchestrator.app import create_app
from orchestrator.engines.runtime import with_installed_engines
from orchestrator.firstrun import FirstRun
from orchestrator.settings import Settings

log = logging.getLogger("atelier")
# Connections a burst may open before the loop accepts them. With 128 (aiohttp's default), 1,000 clients
# connecting at once overflowed the accept queue and waited for SYN retransmits (1 s, then 3 s): submit p99
# 2.5 to 5 s although the handler's own p99 was under 0.5 s (benchmarks/bench_submit_under_fanout.py).
BACKLOG = 2048


def bind(settings: Settings) -> socket.socket:
    """The listening socket for ``ATELIER_HOST``/``ATELIER_PORT``."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.create_server((settings.host, settings.port), family=family, backlog=BACKLOG, reuse_port=False)
    sock.setblocking(False)
    return sock


def effective_settings(settings: Settings, first_run: FirstRun | None) -> Settings:
    """The settings an application is built with: installed engines filled in, the first-run model warmed up."""
    effective = with_installed_engines(settings)
    if first_run is not None and first_run.model and effective.comfyui_warmup_model is None:
        effective = effective.model_copy(update={"comfyui_warmup_model": first_run.model})
    return effective


def describe_engines(settings: Settings) -> str:
    """Which engines an application built with ``settings`` uses, for the log."""
    parts = []
    if settings.comfyui_urls:
        parts.append(f"{len(settings.comfyui_urls)} ComfyUI server(s) by URL")
    if settings.comfyui_dir is not None:
        parts.append(f"ComfyUI launched from {settings.comfyui_dir} with {settings.comfyui_python}")
    if settings.sd_scripts_dir is not None:
        parts.append(f"sd-scripts in {settings.sd_scripts_dir} with {settings.sd_scripts_python}")
    return "; ".join(parts) or "none configured or installed"


async def serve(settings: Settings, database: str) -> None:
    """Serve until a stop signal; rebuild the application once a first run installed an engine."""
    sock = bind(settings)
    host, port = sock.getsockname()[:2]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    first_run = FirstRun(settings) if settings.install_missing and settings.engines != "external" else None
    if first_run is not None:
        first_run.start()
    try:
        while True:
            effective = effective_settings(settings, first_run)
            app = create_app(effective)
            if first_run is not None:
                app[READINESS_CHECKS].append(("installing", first_run.readiness))
            runner = web.AppRunner(
                app, handle_signals=False, handler_cancellation=True, shutdown_timeout=settings.shutdown_timeout_s + 5,
                access_log=logging.getLogger("atelier.access") if settings.access_log else None,
                access_log_class=AccessLogger,
            )  # fmt: skip
            await runner.setup()
            # the site listens on the socket again: without the backlog it would shrink to aiohttp's 128
            await web.SockSite(runner, sock.dup(), backlog=BACKLOG).start()
            log.info("serving on http://%s:%d (auth: %s; database: %s)", host, port, settings.auth, database)
            log.info("engines: %s", describe_engines(effective))
            restart = await _stop_or_restart(stop, first_run)
            await runner.cleanup()
            if not restart:
                return
            first_run = _restarting(first_run)
    finally:
        if first_run is not None:
            await first_run.stop()
        sock.close()


def _restarting(first_run: FirstRun | None) -> FirstRun | None:
    if first_run is not None:
        first_run.restarted()
    log.info("engines installed: restarting the application to use them")
    return first_run


async def _stop_or_restart(stop: asyncio.Event, first_run: FirstRun | None) -> bool:
    """Wait for a stop signal (False) or for a first run to have installed an engine (True)."""
    waits = [asyncio.ensure_future(stop.wait())]
    if first_run is not None:
        waits.append(asyncio.ensure_future(first_run.engines_installed.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    return not stop.is_set()
