"""A prompt's ``/history`` entry on a ComfyUI server (the real one or the stand-in), once it is there.

ComfyUI writes the entry after it said the prompt ended (``execution_success``, ``executing`` null), so a
client that heard the end, or heard it from Atelier, may ask before it exists. Nothing announces it: the
entry is asked for again until it is there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


async def history_entry(
    http: aiohttp.ClientSession, comfy: str, prompt_id: str, *, timeout_s: float = 60.0, every_s: float = 0.02
) -> dict[str, Any]:
    """The prompt's entry in ``comfy``'s ``/history`` (TimeoutError after ``timeout_s``)."""
    async with asyncio.timeout(timeout_s):
        while True:
            async with http.get(f"{comfy}/history/{prompt_id}") as response:
                response.raise_for_status()
                found: dict[str, Any] = await response.json()
            if prompt_id in found:
                return dict(found[prompt_id])
            await asyncio.sleep(every_s)  # polling ComfyUI, which signals nothing to its clients
