# SPDX-License-Identifier: Apache-2.0
"""The routes the Atelier sidebar uses, added to ComfyUI's own server under ``/atelier/``.

Why a proxy on ComfyUI's server rather than the browser calling LoRA Atelier itself: the API key stays on the
ComfyUI server (the browser never holds it, so another extension or a shared screen cannot leak it); the
LoRA Atelier server needs no CORS set-up for every ComfyUI that uses it; ``<img>`` tags and ``EventSource`` —
which cannot send an ``Authorization`` header — work for sample images and live progress; and the sidebar and
the remote loader node read one set of settings. ComfyUI's own middleware refuses cross-site requests to a
loopback ComfyUI, which covers these routes like every other.

- ``GET/POST /atelier/connection``: the server URL and whether a key is set (never the key); save new ones.
- ``GET /atelier/remote-loras``: the remote loader's entries with what the server says about each.
- ``/atelier/api/v1/...``: forwarded to the server's ``/v1/...`` (only the paths the sidebar needs), bodies and
  answers streamed both ways, ``Last-Event-ID`` passed on so that an ``EventSource`` resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from . import comfy_runtime
from .atelier_connection import ConnectionSettingsError, save_connection
from .remote_loras import NO_SERVER, entry_of

log = logging.getLogger(__name__)

FORWARDED_PATHS = re.compile(r"^v1/(loras|subjects|trainings|jobs|events|templates|models)(/[A-Za-z0-9._~%/-]*)?$")
REQUEST_HEADERS = ("Accept", "Content-Type", "Content-Length", "Last-Event-ID")
ANSWER_HEADERS = ("Content-Type", "Content-Disposition", "Cache-Control", "Location", "Retry-After")


def install_routes() -> bool:
    """Add the routes to ComfyUI's server; False (and nothing done) outside ComfyUI."""
    try:
        from server import PromptServer  # ComfyUI
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None:
        return False
    add_routes(instance.routes)
    return True


def add_routes(routes: Any) -> None:
    """Add the sidebar's routes to an aiohttp ``RouteTableDef`` (ComfyUI's, or a test's)."""
    routes.get("/atelier/connection")(connection_status)
    routes.post("/atelier/connection")(save_connection_settings)
    routes.get("/atelier/remote-loras")(remote_loras)
    for method in ("GET", "POST", "DELETE"):
        routes.route(method, "/atelier/api/{tail:.*}")(forward)


def _json(body: Any, status: int = 200) -> Any:
    from aiohttp import web

    return web.json_response(body, status=status)


def _problem(status: int, title: str, detail: str) -> Any:
    from aiohttp import web

    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def _status(refresh: bool) -> dict[str, Any]:
    connection = comfy_runtime.connection()
    if connection is None:
        return {"server_url": None, "key_set": False, "key_hint": None, "reachable": False, "error": None}
    _loras, error = await asyncio.to_thread(comfy_runtime.REMOTE.listing, refresh=refresh)
    return {
        "server_url": connection.server_url,
        "url_source": connection.url_source,
        "key_set": connection.api_key is not None,
        "key_hint": connection.key_hint(),
        "key_source": connection.key_source,
        "reachable": error is None,
        "error": str(error) if error else None,
    }


async def connection_status(request: Any) -> Any:
    """Where the sidebar's calls go, whether a key is set, and whether the server takes it."""
    return _json(await _status(refresh=True))


async def save_connection_settings(request: Any) -> Any:
    """Store ``{server_url, api_key?}`` (an omitted key keeps the stored one); answers the new status."""
    try:
        body = await request.json()
    except ValueError:
        return _problem(400, "Bad body", "send a JSON object {server_url, api_key}")
    if not isinstance(body, dict) or not isinstance(body.get("server_url"), str):
        return _problem(422, "Bad settings", "server_url (text) is required")
    key = body.get("api_key")
    if key is not None and not isinstance(key, str):
        return _problem(422, "Bad settings", "api_key must be text")
    user_dir = comfy_runtime.user_directory()
    if user_dir is None:
        return _problem(503, "No user directory", "this ComfyUI has no user directory to keep settings in")
    try:
        await asyncio.to_thread(save_connection, user_dir, body["server_url"], key)
    except ConnectionSettingsError as exc:
        return _problem(422, "Bad settings", str(exc))
    return _json(await _status(refresh=True))


async def remote_loras(request: Any) -> Any:
    """``{items, error}``: each LoRA version the remote loader offers, as its combo entry, and if cached."""
    refresh = request.query.get("refresh") in ("1", "true")
    loras, error = await asyncio.to_thread(comfy_runtime.REMOTE.listing, refresh=refresh)
    cached = await asyncio.to_thread(comfy_runtime.REMOTE.cached)
    items = [
        {
            "entry": entry,
            "key": lora.key,
            "lora_id": lora.lora_id,
            "name": lora.name,
            "subject": lora.subject,
            "version": lora.version,
            "trigger_word": lora.trigger_word,
            "base_family": lora.base_family,
            "cached": lora.key in cached,
        }
        for lora in loras
        for entry in [entry_of(lora)]
    ]
    listed = {item["key"] for item in items}
    items += [
        {"entry": c.entry, "key": c.key, "lora_id": c.lora_id, "version": c.version, "trigger_word": c.trigger_word,
         "cached": True, "offline": True}
        for c in cached.values() if c.key not in listed
    ]  # fmt: skip
    return _json({"items": items, "error": str(error) if error else None})


class _Upstream:
    """One HTTP client session for the forwarded calls, made on first use on ComfyUI's event loop."""

    session: Any = None

    @classmethod
    def get(cls) -> Any:
        import aiohttp

        if cls.session is None or cls.session.closed:
            cls.session = aiohttp.ClientSession(auto_decompress=False)
        return cls.session


async def forward(request: Any) -> Any:
    """``/atelier/api/<tail>`` -> ``<server>/<tail>`` with the API key added; the answer streamed back."""
    import aiohttp
    from aiohttp import web

    tail = request.match_info["tail"]
    if not FORWARDED_PATHS.match(tail):
        return _problem(404, "Not forwarded", f"/{tail} is not one of the paths the Atelier sidebar uses")
    connection = comfy_runtime.connection()
    if connection is None:
        return _problem(503, "No LoRA Atelier server", NO_SERVER)
    url = f"{connection.server_url}/{tail}" + (f"?{request.query_string}" if request.query_string else "")
    headers = {name: request.headers[name] for name in REQUEST_HEADERS if name in request.headers}
    if connection.api_key:
        headers["Authorization"] = f"Bearer {connection.api_key}"
    data = request.content if request.body_exists else None
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10)
    try:
        upstream = await _Upstream.get().request(request.method, url, headers=headers, data=data, timeout=timeout)
    except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:  # noqa: UP041 - distinct on Python 3.10
        return _problem(502, "LoRA Atelier server unreachable", f"cannot reach {connection.server_url} ({exc})")
    answer = web.StreamResponse(status=upstream.status)
    for name in (*ANSWER_HEADERS, "Content-Encoding"):
        if name in upstream.headers:
            answer.headers[name] = upstream.headers[name]
    try:
        await answer.prepare(request)
        async for chunk in upstream.content.iter_any():
            await answer.write(chunk)
        await answer.write_eof()
    except (ConnectionResetError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        log.debug("atelier_nodes: a forwarded stream ended early (%s %s)", request.method, tail)
    finally:
        upstream.release()
    return answer
