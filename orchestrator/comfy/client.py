# SPDX-License-Identifier: Apache-2.0
"""HTTP client for one ComfyUI server (the routes without the ``/api`` prefix, which both serve)."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from orchestrator.comfy.errors import BackendHTTPError, BackendUnavailable, PromptRejected

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """``GET /queue``: prompt ids running and pending, in ComfyUI's order."""

    running: tuple[str, ...]
    pending: tuple[str, ...]

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


def canonical_prompt_id(prompt_id: str) -> str:
    """ComfyUI accepts only canonical lowercase hyphenated UUIDs as client-chosen prompt ids."""
    canonical = str(uuid.UUID(prompt_id))
    if canonical != prompt_id:
        raise ValueError(f"prompt_id must be a canonical lowercase UUID, got {prompt_id!r}")
    return canonical


class ComfyClient:
    """Async calls to one ComfyUI server; every failure is a :class:`~orchestrator.comfy.errors.ComfyError`.

    ``client_id`` is sent with every prompt: ComfyUI delivers that prompt's execution
    messages only to the websocket opened with the same ``clientId``.
    """

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        client_id: str,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        return f"ComfyClient({self.base_url!r})"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        timeout_s: float | None = None,
    ) -> tuple[int, bytes]:
        url = self.base_url + path
        timeout = aiohttp.ClientTimeout(total=timeout_s) if timeout_s is not None else self._timeout
        try:
            async with self._session.request(
                method, url, json=json_body, params=params, data=data, timeout=timeout
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"{method} {url} failed: {type(exc).__name__}: {exc}", backend=self.base_url
            ) from exc
        if status in (502, 503, 504):
            raise BackendUnavailable(f"{method} {url} answered HTTP {status}", backend=self.base_url)
        return status, body

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self._request(method, path, **kwargs)
        if status != 200:
            raise BackendHTTPError(
                status, body.decode(errors="replace"), backend=self.base_url, what=f"{method} {path}"
            )
        try:
            return json.loads(body)
        except ValueError as exc:
            raise BackendHTTPError(
                status, body[:300].decode(errors="replace"), backend=self.base_url, what=f"{method} {path} (not JSON)"
            ) from exc

    async def _post_ok(self, path: str, payload: Any) -> None:
        status, body = await self._request("POST", path, json_body=payload)
        if status != 200:
            raise BackendHTTPError(status, body.decode(errors="replace"), backend=self.base_url, what=f"POST {path}")

    async def system_stats(self, *, timeout_s: float | None = None) -> dict[str, Any]:
        """``GET /system_stats``: versions, RAM and devices (also the liveness probe)."""
        result: dict[str, Any] = await self._json("GET", "/system_stats", timeout_s=timeout_s)
        return result

    async def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        """``GET /object_info`` (every node class) or ``/object_info/{class}``."""
        path = "/object_info" if node_class is None else f"/object_info/{node_class}"
        result: dict[str, Any] = await self._json("GET", path, timeout_s=120.0)
        return result

    async def queue(self) -> QueueSnapshot:
        """``GET /queue``: which prompts are running and pending."""
        raw = await self._json("GET", "/queue")
        return QueueSnapshot(_ids(raw.get("queue_running")), _ids(raw.get("queue_pending")))

    async def queue_remaining(self) -> int:
        """``GET /prompt``: ComfyUI's count of pending + running prompts."""
        raw = await self._json("GET", "/prompt")
        return int(raw.get("exec_info", {}).get("queue_remaining", 0))

    async def models(self, folder: str) -> list[str]:
        """``GET /models/{folder}``: file names ComfyUI offers in a model folder ("checkpoints", "loras")."""
        result = await self._json("GET", f"/models/{folder}")
        return [str(name) for name in result]

    async def submit(self, graph: Mapping[str, Any], prompt_id: str) -> int:
        """Queue an API-format graph under our own ``prompt_id``; returns ComfyUI's queue number.

        Raises :class:`PromptRejected` (with ``error`` and ``node_errors``) when ComfyUI refuses it.
        """
        payload = {"prompt": graph, "client_id": self.client_id, "prompt_id": canonical_prompt_id(prompt_id)}
        status, body = await self._request("POST", "/prompt", json_body=payload)
        text = body.decode(errors="replace")
        parsed: Any = None
        with contextlib.suppress(ValueError):
            parsed = json.loads(body)
        if status == 200 and isinstance(parsed, dict):
            if parsed.get("node_errors"):
                log.warning(
                    "comfy %s: prompt %s queued with node errors %s", self.base_url, prompt_id, parsed["node_errors"]
                )
            return int(parsed.get("number", 0))
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            raise PromptRejected(
                status, parsed["error"], parsed.get("node_errors") or {}, body=text, backend=self.base_url
            )
        raise BackendHTTPError(status, text, backend=self.base_url, what="POST /prompt")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """``GET /history/{id}``: the prompt's entry, or None while it is not finished (or unknown)."""
        raw = await self._json("GET", f"/history/{prompt_id}")
        entry = raw.get(prompt_id) if isinstance(raw, dict) else None
        return entry if isinstance(entry, dict) else None

    async def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        """``GET /view``: the bytes of an output, temp or input file."""
        params = {"filename": filename, "subfolder": subfolder, "type": type}
        status, body = await self._request("GET", "/view", params=params, timeout_s=120.0)
        if status != 200:
            raise BackendHTTPError(
                status, body.decode(errors="replace"), backend=self.base_url, what=f"GET /view {filename}"
            )
        return body

    async def upload_image(
        self, data: bytes, filename: str, *, subfolder: str = "", overwrite: bool = False, type: str = "input"
    ) -> str:
        """``POST /upload/image`` (multipart field ``image``); returns the name to give ``LoadImage``.

        ComfyUI may rename the file (``name (1).png``) when a different file has the name already;
        with a subfolder the returned reference is ``subfolder/name``.
        """
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        form.add_field("type", type)
        if subfolder:
            form.add_field("subfolder", subfolder)
        if overwrite:
            form.add_field("overwrite", "true")
        raw = await self._json("POST", "/upload/image", data=form, timeout_s=120.0)
        name = str(raw["name"])
        stored_subfolder = str(raw.get("subfolder") or "")
        return f"{stored_subfolder}/{name}" if stored_subfolder else name

    async def interrupt(self, prompt_id: str | None = None) -> None:
        """``POST /interrupt``; with a prompt id ComfyUI interrupts only if that prompt is running."""
        await self._post_ok("/interrupt", {"prompt_id": prompt_id} if prompt_id else {})

    async def delete_queued(self, prompt_ids: Iterable[str]) -> None:
        """``POST /queue {"delete": [...]}``: drop prompts that are still pending (running ones stay)."""
        await self._post_ok("/queue", {"delete": list(prompt_ids)})

    async def free(self, *, unload_models: bool = True, free_memory: bool = False) -> None:
        """``POST /free``: unload models and/or drop caches once ComfyUI is idle."""
        await self._post_ok("/free", {"unload_models": unload_models, "free_memory": free_memory})


def _ids(items: Any) -> tuple[str, ...]:
    if not isinstance(items, list):
        return ()
    return tuple(str(item[1]) for item in items if isinstance(item, list | tuple) and len(item) > 1)


__all__ = ["ComfyClient", "QueueSnapshot", "canonical_prompt_id"]
