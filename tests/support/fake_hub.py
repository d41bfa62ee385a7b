"""A local HTTP server that answers the few Hugging Face Hub requests ``snapshot_download`` makes.

Serves one repository's files at one commit: the repo info (``/api/models/<id>/revision/<rev>``), the
recursive tree (``/api/models/<id>/tree/<sha>``) and each file (``/<id>/resolve/<rev>/<path>``, HEAD and GET,
with the commit and ETag headers the client checks). Every request is recorded, so a test can see what was
fetched (and that filtered-out files were not).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeHub:
    """The served repository and the requests seen."""

    repo_id: str
    files: Mapping[str, bytes]
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def _known(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path))
        if f"{request.match_info['org']}/{request.match_info['name']}" != self.repo_id:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RepoNotFound"}, text="Repository not found")

    async def info(self, request: web.Request) -> web.Response:
        self._known(request)
        siblings = [{"rfilename": path} for path in self.files]
        return web.json_response({"id": self.repo_id, "modelId": self.repo_id, "sha": COMMIT, "siblings": siblings})

    async def tree(self, request: web.Request) -> web.Response:
        self._known(request)
        entries = [
            {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for path, data in self.files.items()
        ]
        return web.json_response(entries)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        self._known(request)
        data = self.files.get(request.match_info["path"])
        if data is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound"}, text="Entry not found")
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
            "Content-Length": str(len(data)),
            "Content-Type": "application/octet-stream",
        }
        if request.method == "HEAD":
            return web.Response(headers=headers)
        return web.Response(body=data, headers=headers)


@asynccontextmanager
async def serving(hub: FakeHub) -> AsyncIterator[FakeHub]:
    """Run ``hub`` on a free loopback port; ``hub.url`` is its endpoint."""
    app = web.Application()
    repo = "/{org}/{name}"
    app.router.add_get("/api/models" + repo + "/revision/{rev}", hub.info)
    app.router.add_get("/api/models" + repo + "/tree/{rev}", hub.tree)
    app.router.add_route("*", repo + "/resolve/{rev}/{path:.+}", hub.resolve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hub.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        yield hub
    finally:
        await runner.cleanup()
