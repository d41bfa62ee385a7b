"""The first run's ``installing`` check passes only once the application answering uses what was installed.

The installs themselves are scripted here (the integration tests in tests/integration/installs run the real
ones); what is tested is the readiness around the end of the installs and the application's rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.firstrun import FirstRun
from orchestrator.settings import Settings

APP = web.Application()


class ScriptedFirstRun(FirstRun):
    """Every install succeeds at once; the model's readiness is read the moment its item turns installed."""

    seen_when_last_item_installed: tuple[bool, Any] | None = None

    async def _install_engine(self, name: str) -> bool:
        self.items[name].state = "installed"
        return True

    async def _pull_default_model(self) -> None:
        self.items[f"model {self.settings.default_model}"].state = "installed"
        self.model = self.settings.default_model
        self.seen_when_last_item_installed = await self.readiness(APP)


async def test_not_ready_until_the_application_is_rebuilt_with_the_installed_engines(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", models_dir=tmp_path / "models", comfyui_urls=[], comfyui_dir=None,
                        sd_scripts_dir=None, default_model="sd15")  # fmt: skip
    first_run = ScriptedFirstRun(settings)
    first_run.start()
    assert set(first_run.items) == {"comfyui", "sd-scripts", "model sd15"}
    ok, _ = await first_run.readiness(APP)
    assert not ok

    await first_run.engines_installed.wait()
    assert first_run.seen_when_last_item_installed is not None
    ok, items = first_run.seen_when_last_item_installed
    assert all(item["state"] == "installed" for item in items.values())
    assert not ok, "every item installed, but the application that uses them is not built yet"
    ok, _ = await first_run.readiness(APP)
    assert not ok, "installed, restart pending"

    first_run.restarted()
    ok, items = await first_run.readiness(APP)
    assert ok, items
    await first_run.stop()
