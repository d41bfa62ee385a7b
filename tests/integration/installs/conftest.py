"""The installer and first-run tests start `atelier` processes that inherit this process's environment:
settings meant for other tests (the real engines of an engine-test shell, ``ATELIER_COMFYUI_DIR`` and the
like) would make them skip the very installs they test, so none reaches them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every ``ATELIER_*`` service setting of the environment (the tests' own ``ATELIER_TEST_*`` stay)."""
    for name in list(os.environ):
        if name.startswith("ATELIER_") and not name.startswith("ATELIER_TEST_"):
            monkeypatch.delenv(name)
