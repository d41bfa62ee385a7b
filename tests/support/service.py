"""Running the service in-process (tests) and as a subprocess (crash tests, benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.app import create_app
from orchestrator.settings import Settings


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[tuple[web.Application, str]]:
    """Start the service's app on a free loopback port; yield it and its base URL."""
    app = create_app(settings)
    async with serving(app) as url:
        yield app, url


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn_atelier(args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``atelier <args>`` as a child process with ``env`` added to ours."""
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def wait_until_answering(
    url: str, *, exit_code: Callable[[], int | None] = lambda: None, name: str = "the process", timeout_s: float = 30.0
) -> None:
    """Return once ``GET url`` answers 200, failing fast when ``exit_code`` says the process behind it ended."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout_s):
        while True:
            if (code := exit_code()) is not None:
                raise RuntimeError(f"{name} exited with {code}")
            with contextlib.suppress(aiohttp.ClientError):  # not listening yet, or cut off while starting
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)  # polling a process that offers no readiness signal


async def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Wait for /healthz to answer (failing fast if the process died)."""
    await wait_until_answering(f"{base_url}/healthz", exit_code=process.poll, name="the service", timeout_s=timeout_s)


async def running_owner(engine: AsyncEngine) -> uuid.UUID:
    """A new owner row for jobs created directly through the store."""
    from orchestrator.api.auth import ensure_owner

    return await ensure_owner(engine, f"owner-{uuid.uuid4().hex[:8]}")
