"""/docs is Swagger UI from the installed wheel: served offline, and it renders every operation in Chromium."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.conftest import Service
from tests.support.browser import chromium_page


async def test_the_page_and_its_assets_come_from_the_service(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{service.url}/docs") as response:
        assert response.status == 200
        page = await response.text()
    assert "/docs/assets/swagger-ui-bundle.js" in page
    assert '"validatorUrl": null' in page
    assert "http://" not in page
    assert "https://" not in page
    async with http.get(f"{service.url}/docs/assets/swagger-ui-bundle.js") as response:
        assert response.status == 200
        assert response.content_type in ("application/javascript", "text/javascript")
        assert len(await response.read()) > 100_000
    async with http.get(f"{service.url}/docs/assets/..%2f__init__.py") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_chromium_renders_every_operation(service: Service, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{service.url}/openapi.json") as response:
        doc: dict[str, Any] = await response.json()
    expected = {op["operationId"] for methods in doc["paths"].values() for op in methods.values()}
    async with chromium_page() as (page, refused):
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{service.url}/docs")
        await page.wait_for_selector(".opblock", timeout=30_000)
        await page.evaluate("() => document.querySelectorAll('.opblock-tag').forEach(t => t.scrollIntoView())")
        rendered = await page.eval_on_selector_all(".opblock", "els => els.map(e => e.id)")
        title = await page.text_content(".info .title")
        load_errors = await page.eval_on_selector_all(".errors-wrapper", "els => els.map(e => e.textContent)")
    assert refused == []
    assert errors == []
    assert load_errors == []
    assert title is not None
    assert "LoRA Atelier" in title
    # Swagger UI ids its blocks "operations-<tag>-<operationId>"
    shown = {block.rsplit("-", 1)[-1] for block in rendered if block.startswith("operations-")}
    missing = {op for op in expected if not any(block.endswith(f"-{op}") for block in rendered)}
    assert missing == set(), f"not rendered: {sorted(missing)}; shown {sorted(shown)[:5]}..."
