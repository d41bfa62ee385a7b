"""Running the ``atelier`` command as a user would: a child process, or one in a pseudo-terminal."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

CLI = [sys.executable, "-m", "atelier_client.cli"]


@dataclass(frozen=True)
class Ran:
    """A finished command."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """Its stdout as JSON (the --json document)."""
        return json.loads(self.stdout)


def cli_env(url: str, api_key: str | None, **extra: str) -> dict[str, str]:
    """The caller's environment with the service's address and key (and nothing from a user's config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATELIER_")}
    env.update({"ATELIER_URL": url, "ATELIER_CONFIG": os.devnull, "COLUMNS": "160", **extra})
    if api_key is not None:
        env["ATELIER_API_KEY"] = api_key
    return env


async def atelier(env: dict[str, str], *args: str, timeout_s: float = 120) -> Ran:
    """Run ``atelier <args>`` to its end without blocking the event loop the service runs on."""
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(timeout_s):
        stdout, stderr = await process.communicate()
    return Ran(int(process.returncode or 0), stdout.decode(), stderr.decode())
