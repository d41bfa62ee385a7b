"""What every user command shares: the client, the console, ``--json``, watching with Ctrl-C to detach."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from atelier_client.async_client import AsyncClient
from atelier_client.cli.interrupt import run_interruptibly
from atelier_client.cli.progress import WatchedJob, watch_jobs
from atelier_client.errors import AtelierError

T = TypeVar("T")
DETACHED = 130  # the shell's code for "stopped by Ctrl-C"; the jobs go on


class Session:
    """One command's connection and output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self.console = Console(stderr=True)

    def client(self) -> AsyncClient:
        """A client for the configured service."""
        return AsyncClient(getattr(self.args, "url", None), api_key=getattr(self.args, "api_key", None))

    def run(self, work: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run ``work`` with a client on a fresh event loop."""

        async def with_client() -> T:
            async with self.client() as client:
                return await work(client)

        return run_interruptibly(with_client())

    async def watch(self, client: AsyncClient, jobs: list[tuple[uuid.UUID, str]], out: Path | None) -> list[WatchedJob]:
        """Follow jobs to their end: a live display for people, silently for ``--json``."""
        console = Console(stderr=True, quiet=self.json)
        return await watch_jobs(client, jobs, console, out)

    def detached(self, job_ids: list[str]) -> int:
        """Ctrl-C while watching: say how to come back; the jobs are not cancelled."""
        self.console.print(
            "\n[yellow]detached[/]: the job goes on (cancel it with `atelier cancel <id>`)", highlight=False
        )
        for job_id in job_ids:
            self.console.print(f"  atelier watch {job_id}", highlight=False)
        return DETACHED


def short(job_id: Any) -> str:
    """The first block of a job id, for display."""
    return str(job_id).split("-", 1)[0]


def require(condition: bool, message: str) -> None:
    """Stop the command with ``message`` unless ``condition``."""
    if not condition:
        raise AtelierError(message)
