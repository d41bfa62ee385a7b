"""Headless Chromium for browser tests, through Playwright, never downloading a browser.

The machine's Chromium is used (``ATELIER_TEST_CHROMIUM``, else ``CHROMIUM``, else /usr/bin/chromium); when it
or the ``playwright`` package is missing the test is skipped with the reason. Every request a page makes to a
host other than 127.0.0.1 is aborted, so a page can never reach the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Chromium executable to drive, or None."""
    for candidate in (os.environ.get("ATELIER_TEST_CHROMIUM"), os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


@asynccontextmanager
async def chromium_page(viewport: dict[str, int] | None = None) -> AsyncIterator[tuple[Any, list[str]]]:
    """A fresh page in headless Chromium (``viewport``: its size) and the list of URLs it was refused
    (non-loopback hosts)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("browser test not run: the playwright package is not installed (pip install playwright)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("browser test not run: no Chromium (set ATELIER_TEST_CHROMIUM or apt-get install chromium)")
    refused: list[str] = []

    async def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
            await context.route("**/*", only_loopback)
            yield await context.new_page(), refused
        finally:
            await browser.close()
