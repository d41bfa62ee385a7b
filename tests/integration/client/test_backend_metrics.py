"""atelier_backend_up says which ComfyUI backends are ready."""

from __future__ import annotations

import aiohttp

from tests.integration.client.conftest import ClientService


async def test_backend_up_names_each_backend(client_service: ClientService) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{client_service.url}/metrics") as response:
        metrics = await response.text()
    assert f'atelier_backend_up{{backend="{client_service.comfyui.url}"}} 1.0' in metrics
