# SPDX-License-Identifier: Apache-2.0
"""ComfyUI's HTTP routes for the stand-in (served with and without the ``/api`` prefix)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.standin.comfyui.executor import Task
from tests.standin.comfyui.pack_nodes import with_pack_options
from tests.standin.comfyui.prompt_run import now_ms
from tests.standin.comfyui.recordings import object_info_for, recorded
from tests.standin.comfyui.validation import validate_prompt

if TYPE_CHECKING:
    from tests.standin.comfyui.server import StandinComfyUI


def _error_body(kind: str, message: str, details: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "details": details, "extra_info": {}}, "node_errors": {}}


_INDEX_HTML = "<!doctype html><html><head><title>ComfyUI</title></head><body></body></html>\n"


class Routes:
    """Request handlers bound to one stand-in server."""

    def __init__(self, server: StandinComfyUI) -> None:
        self.s = server

    @staticmethod
    def object_info_of(server: StandinComfyUI) -> dict[str, Any]:
        """``/object_info`` listing the server's models and uploaded inputs."""
        info = {**object_info_for(server.models, server.files.input_files()), **server.options.extra_nodes}
        return with_pack_options(info)  # the pack's markers list the server's files, as the real pack does

    def install(self, app: web.Application) -> None:
        """Add every route, twice (plain and ``/api``)."""
        table = [
            ("GET", "/ws", self.ws),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/prompt", self.get_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("POST", "/interrupt", self.interrupt),
            ("POST", "/free", self.free),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_one),
            ("POST", "/history", self.post_history),
            ("GET", "/view", self.view),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_one),
            ("GET", "/system_stats", self.system_stats),
            ("GET", "/models", self.model_folders),
            ("GET", "/models/{folder}", self.models),
            ("GET", "/features", self.features),
            ("GET", "/embeddings", self.embeddings),
        ]
        for prefix in ("", "/api"):
            app.router.add_routes([web.route(method, prefix + path, handler) for method, path, handler in table])
        app.router.add_get("/", self.index)  # the frontend's page: only without the prefix, as on the real server

    async def index(self, request: web.Request) -> web.Response:
        """ComfyUI serves its frontend's ``index.html`` here; wrappers that probe ``/`` for liveness see 200."""
        return web.Response(text=_INDEX_HTML, content_type="text/html")

    @property
    def ex(self) -> Any:
        return self.s.executor

    async def ws(self, request: web.Request) -> web.StreamResponse:
        async def on_connect(sid: str) -> None:
            await self.s.hub.send_json("status", {"status": self.ex.queue_info(), "sid": sid}, sid)
            running = self.ex.running
            if running is not None and running.client_id == sid and self.ex.last_node_id is not None:
                await self.s.hub.send_json("executing", {"node": self.ex.last_node_id}, sid)

        return await self.s.hub.serve(request, on_connect)

    async def post_prompt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:  # ComfyUI lets the exception escape: aiohttp's plain 500 answer
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        if "number" in body:
            number = body["number"]
        else:
            number = -self.ex.number if body.get("front") else self.ex.number
            self.ex.number += 1
        if "prompt" not in body:
            return web.json_response(_error_body("no_prompt", "No prompt provided", "No prompt provided"), status=400)
        prompt_id = body.get("prompt_id")
        if prompt_id is None:
            prompt_id = str(uuid.uuid4())
        elif not _canonical_uuid(prompt_id):
            return web.json_response(
                _error_body(
                    "invalid_prompt_id",
                    "prompt_id must be a valid UUID",
                    "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server "
                    "generate one",
                ),
                status=400,
            )
        verdict = validate_prompt(body["prompt"], self.ex.object_info, self.s.files.input_exists)
        if not verdict.ok:
            return web.json_response({"error": verdict.error, "node_errors": verdict.node_errors}, status=400)
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        extra["create_time"] = now_ms()
        await self.ex.put(Task(number, prompt_id, body["prompt"], extra, verdict.outputs))
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": verdict.node_errors})

    async def get_prompt(self, request: web.Request) -> web.Response:
        return web.json_response(self.ex.queue_info())

    async def get_queue(self, request: web.Request) -> web.Response:
        running = [self.ex.running.as_item()] if self.ex.running is not None else []
        pending = [t.as_item() for t in sorted(self.ex.pending, key=lambda t: t.number)]
        return web.json_response({"queue_running": running, "queue_pending": pending})

    async def post_queue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            await self.ex.clear()
        if "delete" in body:
            await self.ex.delete([str(i) for i in body["delete"]])
        return web.Response(status=200)

    async def interrupt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        self.ex.interrupt(body.get("prompt_id") if isinstance(body, dict) else None)
        return web.Response(status=200)

    async def free(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.ex.free(bool(body.get("free_memory", False)), bool(body.get("unload_models", False)))
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.Response:
        items = list(self.ex.history.items())
        if "max_items" in request.query:
            items = items[-int(request.query["max_items"]) :]
        return web.json_response(dict(items))

    async def get_history_one(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        entry = self.ex.history.get(prompt_id)
        return web.json_response({prompt_id: entry} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.ex.history.clear()
        for prompt_id in body.get("delete", []):
            self.ex.history.pop(prompt_id, None)
        return web.Response(status=200)

    async def view(self, request: web.Request) -> web.Response:
        filename = request.query.get("filename", "")
        if not filename or filename.startswith("/") or ".." in filename:
            return web.Response(status=400)
        if self.s.unavailable_views > 0:
            self.s.unavailable_views -= 1
            return web.Response(status=503)
        data = self.s.files.read(request.query.get("type", "output"), request.query.get("subfolder", ""), filename)
        if data is None:
            return web.Response(status=404)
        content_type = "image/png" if filename.lower().endswith(".png") else "application/octet-stream"
        return web.Response(
            body=data, content_type=content_type, headers={"Content-Disposition": f'filename="{filename}"'}
        )

    async def upload_image(self, request: web.Request) -> web.Response:
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, web.FileField) or not image.filename:
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        subfolder = str(post.get("subfolder") or "")
        overwrite = str(post.get("overwrite") or "") in ("true", "1")
        name = self.s.files.upload(
            image.file.read(), image.filename, kind=kind, subfolder=subfolder, overwrite=overwrite
        )
        if name is None:
            return web.Response(status=400)
        self.ex.object_info = self.object_info_of(self.s)
        return web.json_response({"name": name, "subfolder": subfolder, "type": kind})

    async def object_info(self, request: web.Request) -> web.Response:
        if self.s.rescan():
            self.ex.object_info = self.object_info_of(self.s)
        return web.Response(text=json.dumps(self.ex.object_info), content_type="application/json")

    async def object_info_one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        info = self.ex.object_info.get(name)
        return web.json_response({name: info} if info is not None else {})

    async def system_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.s.system_stats())

    async def model_folders(self, request: web.Request) -> web.Response:
        return web.json_response(recorded().model_folders)

    async def models(self, request: web.Request) -> web.Response:
        folder = request.match_info["folder"]
        if folder not in recorded().model_folders and folder not in self.s.models:
            return web.Response(status=404)
        return web.json_response(self.s.offered(folder))

    async def features(self, request: web.Request) -> web.Response:
        return web.json_response(recorded().features)

    async def embeddings(self, request: web.Request) -> web.Response:
        return web.json_response([])


def _canonical_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False
