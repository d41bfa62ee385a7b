# SPDX-License-Identifier: Apache-2.0
"""Supervise a local ComfyUI as a child process (when a ComfyUI directory is configured).

The child runs ``<python> <comfy_dir>/main.py`` on a free loopback port, in its own session
(process group), with our model store mapped in through an ``extra_model_paths.yaml`` and its
input/output/temp/user folders under our var dir; its output goes to a log file. It is
restarted with backoff when it dies and stopped with SIGTERM, then SIGKILL, to its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import aiohttp
import yaml

from orchestrator.comfy.backoff import backoff_delay
from orchestrator.comfy.errors import LocalComfyError

log = logging.getLogger(__name__)

#: ComfyUI model folder -> sub-folder of our model store.
DEFAULT_MODEL_FOLDERS: Mapping[str, str] = {
    "checkpoints": "checkpoints",
    "loras": "loras",
    "vae": "vae",
    "embeddings": "embeddings",
    "upscale_models": "upscale_models",
    "controlnet": "controlnet",
    "clip_vision": "clip_vision",
    "text_encoders": "text_encoders",
    "diffusion_models": "diffusion_models",
}
_STABLE_AFTER_S = 60.0


@dataclass(frozen=True)
class LocalComfyConfig:
    """How to run the local ComfyUI."""

    comfy_dir: Path
    python: Path
    models_dir: Path
    var_dir: Path
    cpu: bool = False
    host: str = "127.0.0.1"
    port: int | None = None
    extra_args: tuple[str, ...] = ()
    model_folders: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MODEL_FOLDERS))
    start_timeout_s: float = 180.0
    stop_timeout_s: float = 10.0
    restart_backoff_initial_s: float = 1.0
    restart_backoff_max_s: float = 60.0
    env: Mapping[str, str] | None = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def write_extra_model_paths(path: Path, models_dir: Path, folders: Mapping[str, str]) -> None:
    """ComfyUI's ``extra_model_paths.yaml`` mapping our store's folders."""
    section: dict[str, str] = {"base_path": str(models_dir.resolve())}
    section.update({folder: sub for folder, sub in folders.items()})
    path.write_text(yaml.safe_dump({"atelier": section}, sort_keys=False))


class LocalComfyUI:
    """A supervised local ComfyUI: ``url = await local.start()``, later ``await local.stop()``."""

    def __init__(self, config: LocalComfyConfig) -> None:
        # The child runs in its checkout: every path it is given must not depend on our working directory.
        config = replace(
            config,
            comfy_dir=config.comfy_dir.absolute(),
            python=config.python if config.python.is_absolute() or "/" not in str(config.python)
            else config.python.absolute(),
            models_dir=config.models_dir.absolute(),
            var_dir=config.var_dir.absolute(),
        )  # fmt: skip
        self.config = config
        self.port = config.port or free_port(config.host)
        self.home = config.var_dir / "comfyui"
        self.log_path = self.home / "comfyui.log"
        self.restarts = 0
        self.starts = 0
        self._started = asyncio.Condition()
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._up = asyncio.Event()

    @property
    def url(self) -> str:
        """Where the child listens."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id (= process group id) of the running child."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    def argv(self) -> list[str]:
        """The child's command line."""
        home = self.home
        argv = [
            str(self.config.python),
            str(self.config.comfy_dir / "main.py"),
            "--listen",
            self.config.host,
            "--port",
            str(self.port),
            "--disable-auto-launch",
            "--extra-model-paths-config",
            str(home / "extra_model_paths.yaml"),
            "--input-directory",
            str(home / "input"),
            "--output-directory",
            str(home / "output"),
            "--temp-directory",
            str(home / "temp"),
            "--user-directory",
            str(home / "user"),
        ]
        if self.config.cpu:
            argv.append("--cpu")
        return argv + list(self.config.extra_args)

    def _prepare(self) -> None:
        for sub in ("input", "output", "temp", "user"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        write_extra_model_paths(self.home / "extra_model_paths.yaml", self.config.models_dir, self.config.model_folders)

    async def start(self) -> str:
        """Start the child and wait until it answers ``/system_stats``; returns its URL."""
        self._prepare()
        self._stopping = False
        proc = await self._spawn_and_wait()
        self._supervisor = asyncio.create_task(self._supervise(proc), name="comfy-local-supervisor")
        return self.url

    async def wait_started(self, count: int, timeout_s: float) -> None:
        """Wait until the child has come up ``count`` times in all (1 = the first start)."""
        async with self._started:
            await asyncio.wait_for(self._started.wait_for(lambda: self.starts >= count), timeout_s)

    async def _spawn_and_wait(self) -> asyncio.subprocess.Process:
        env = dict(os.environ if self.config.env is None else self.config.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log_file = await asyncio.to_thread(self._open_log)
        with log_file:
            proc = self._proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                cwd=str(self.config.comfy_dir),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        log.info("local ComfyUI started (pid %s) on %s, log %s", proc.pid, self.url, self.log_path)
        try:
            await self._wait_answering(proc)
        except BaseException:
            await self._terminate()
            raise
        self._up.set()
        async with self._started:
            self.starts += 1
            self._started.notify_all()
        return proc

    def _open_log(self) -> BinaryIO:
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed by the caller
        log_file.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {self.argv()}\n".encode())
        log_file.flush()
        return log_file

    async def _wait_answering(self, proc: asyncio.subprocess.Process) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if proc.returncode is not None:
                    raise LocalComfyError(
                        f"local ComfyUI exited with {proc.returncode} while starting; "
                        f"see {self.log_path}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.url + "/system_stats") as response:
                        if response.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise LocalComfyError(
                        f"local ComfyUI did not answer within {self.config.start_timeout_s} s; see {self.log_path}"
                    )
                await asyncio.sleep(0.25)  # polling an external process; there is nothing to wait on

    async def _supervise(self, proc: asyncio.subprocess.Process) -> None:
        attempt = 0
        while not self._stopping:
            started = time.monotonic()
            code = await proc.wait()
            self._up.clear()
            if self._stopping:
                return
            attempt = 0 if time.monotonic() - started > _STABLE_AFTER_S else attempt
            restarted = await self._restart_after_exit(code, attempt)
            if restarted is None:
                return
            proc = restarted
            attempt += 1

    async def _restart_after_exit(self, code: int, attempt: int) -> asyncio.subprocess.Process | None:
        """The restarted child; None when the instance is being stopped instead."""
        while not self._stopping:
            delay = backoff_delay(
                attempt, initial=self.config.restart_backoff_initial_s, maximum=self.config.restart_backoff_max_s
            )
            log.error("local ComfyUI exited with %s; restarting in %.1f s (see %s)", code, delay, self.log_path)
            await asyncio.sleep(delay)
            self.restarts += 1
            try:
                return await self._spawn_and_wait()
            except LocalComfyError as exc:
                log.error("local ComfyUI restart failed: %s", exc)
                attempt += 1
        return None

    async def stop(self) -> None:
        """Stop supervising and end the child's process group (SIGTERM, then SIGKILL)."""
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._terminate()
        self._up.clear()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.config.stop_timeout_s)
        except TimeoutError:
            log.warning("local ComfyUI ignored SIGTERM for %.0f s; killing it", self.config.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the leader left behind in its group
        log.info("local ComfyUI stopped (exit %s)", proc.returncode)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the child's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
