# SPDX-License-Identifier: Apache-2.0
"""First-run installs inside the service (``ATELIER_INSTALL_MISSING=true``, which ``make run`` sets).

The service answers at once; in the background the engines it would use but has neither configured nor
installed are installed (one after the other, as ``atelier engines install`` does), and the default model
(``ATELIER_DEFAULT_MODEL``) is pulled when the store lacks it — ``demo`` instead where the hub cannot be
reached, which the log and /readyz say. Until everything is settled, /readyz is 503 with an ``installing``
check naming each item's state and step; an item that failed stays reported there with the command that
retries it, and the service goes on serving what it can. When an engine was installed, the serving loop
restarts the application once so that it launches and uses it (see :mod:`orchestrator.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.engines.layout import EngineLayout
from orchestrator.engines.runtime import engines_missing
from orchestrator.engines.specs import ENGINES
from orchestrator.modelstore.pull import UNREACHABLE_EXIT
from orchestrator.modelstore.store import ModelStore
from orchestrator.settings import Settings, engine_origin, engines_root

log = logging.getLogger(__name__)

STEP_LINE = re.compile(r"^\[\d+/\d+\] ")


@dataclass
class Item:
    """One thing being installed: its state (waiting, installing, installed, failed) and what it is doing."""

    state: str = "waiting"
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        """For /readyz."""
        return {"state": self.state, **({"detail": self.detail} if self.detail else {})}


@dataclass
class FirstRun:
    """The background installs of one service run."""

    settings: Settings
    items: dict[str, Item] = field(default_factory=dict)
    engines_installed: asyncio.Event = field(default_factory=asyncio.Event)
    model: str | None = None
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start installing what is missing (nothing when nothing is)."""
        for name in engines_missing(self.settings):
            self.items[name] = Item()
        if self._default_model_missing():
            self.items[f"model {self.settings.default_model}"] = Item()
        elif self.settings.default_model in self._store().catalog():
            self.model = self.settings.default_model
        if self.items:
            log.info("first run: installing %s in the background (/readyz follows it)", ", ".join(self.items))
            self._task = asyncio.create_task(self._run(), name="first-run installs")

    async def stop(self) -> None:
        """Stop installing (an interrupted engine install resumes at its step next time)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def settled(self) -> bool:
        """Whether the installs are over and the application answering is the one built with what they installed.

        The items' states alone do not tell: the last one turns ``installed`` before the restart that puts the
        engines to use, and the application before it passes its ``comfyui`` check with no ComfyUI configured.
        """
        running = self._task is not None and not self._task.done()
        return not running and not self.engines_installed.is_set()

    def restarted(self) -> None:
        """The application was built again with the engines installed: nothing is pending any more."""
        self.engines_installed.clear()

    async def readiness(self, _app: web.Application) -> tuple[bool, Any]:
        """The ``installing`` check of /readyz."""
        ok = self.settled and all(item.state == "installed" for item in self.items.values())
        return ok, {name: item.as_dict() for name, item in self.items.items()} or "nothing to install"

    def _store(self) -> ModelStore:
        return ModelStore(self.settings.models_dir, self.settings.model_catalog)

    def _default_model_missing(self) -> bool:
        rows = {row["name"]: row for row in self._store().listing()}
        wanted = rows.get(self.settings.default_model)
        return wanted is None or not wanted["complete"]

    async def _run(self) -> None:
        models = asyncio.create_task(self._pull_default_model())
        installed_any = False
        for name in [n for n in ENGINES if n in self.items]:
            installed_any |= await self._install_engine(name)
        await models
        if installed_any:
            self.engines_installed.set()

    def _command(self, *args: str) -> list[str]:
        flags = ["--engines-dir", str(engines_root(self.settings))] if args[0] == "engines" else []
        return [sys.executable, "-m", "orchestrator.cli", *args, *flags, "--models-dir", str(self.settings.models_dir)]

    async def _install_engine(self, name: str) -> bool:
        item = self.items[name]
        item.state = "installing"
        source, ref = engine_origin(self.settings, name)
        origin = [*(["--source", source] if source else []), *(["--ref", ref] if ref else [])]
        argv = self._command("engines", "install", name, "--torch", self.settings.engines_torch, *origin)
        code, last = await _run_child(
            argv, item, EngineLayout.of(engines_root(self.settings), name).root / "first-run.log"
        )
        if code != 0:
            item.state, item.detail = "failed", last or f"exit {code}; retry: atelier engines install {name}"
            log.error("first run: %s install failed: %s", name, item.detail)
            return False
        item.state, item.detail = "installed", ""
        log.info("first run: %s installed", ENGINES[name].title)
        return True

    async def _pull_default_model(self) -> None:
        wanted = self.settings.default_model
        item = self.items.get(f"model {wanted}")
        if item is None:
            return
        item.state = "installing"
        logs = self.settings.var_dir / "first-run-models.log"
        code, last = await _run_child(self._command("models", "pull", wanted), item, logs)
        if code == UNREACHABLE_EXIT and wanted != "demo":
            log.warning(
                "first run: the hub cannot be reached (%s): making the random-weight demo model instead; its images "
                "are noise. `atelier models pull %s` gets the real one later",
                last,
                wanted,
            )
            item.detail = "hub unreachable: making the demo model instead (its images are noise)"
            code, last = await _run_child(self._command("models", "pull", "demo"), item, logs)
            wanted = "demo"
        if code != 0:
            item.state, item.detail = "failed", f"{last}; retry: atelier models pull {wanted}"
            log.error("first run: model %s: %s", wanted, last)
            return
        self.model, item.state = wanted, "installed"
        item.detail = (
            "demo model (noise images): the hub was unreachable" if wanted != self.settings.default_model else ""
        )
        log.info("first run: model %s ready", wanted)


async def _run_child(argv: list[str], item: Item, log_path: Path) -> tuple[int, str]:
    """Run an ``atelier`` command as a child (killed with its group if we are cancelled); its step lines go to
    ``item`` and everything to ``log_path``. Returns the exit code and the last error line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    last = ""
    try:
        with log_path.open("a") as out:
            while proc.stdout is not None and (raw := await proc.stdout.readline()):
                line = raw.decode(errors="replace").rstrip()
                out.write(line + "\n")
                if STEP_LINE.match(line):
                    item.detail = line
                    log.info("first run: %s", line)
                elif line.startswith("atelier "):
                    last = line
                elif last and line.startswith("  "):  # the error's hint, log and retry lines
                    last += " " + line.strip()
        return await proc.wait(), last
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        await proc.wait()
        raise
