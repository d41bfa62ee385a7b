"""A local HTTP server that answers the Hugging Face Hub requests our pulls make (``HF_ENDPOINT`` points at it).

Serves files by (repository, path) at one commit:

* ``/api/models/<repo>/revision/<rev>`` and ``/api/models/<repo>/tree/<rev>``: what ``snapshot_download``
  asks before it fetches a repository's files;
* ``/<repo>/resolve/<rev>/<path>``, HEAD and GET: the file, with the headers ``hf_hub_download`` checks
  (``X-Repo-Commit``, ``X-Linked-Etag`` = the file's sha256, ``X-Linked-Size``) and ranges on GET, so a cut
  download can resume.

Faults a test can ask for: ``announced`` maps a file to a wrong sha256 to announce; ``cut_first_download``
drops the connection half-way through the first GET. Every request is recorded (``requests``, and the
``Range`` of each GET in ``ranges``), so a test sees what was fetched and what was not.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"

FileKey = tuple[str, str]  # (repository id, path in it)


@dataclass
class FakeHub:
    """The served files, the faults asked for and the requests seen."""

    files: dict[FileKey, bytes] = field(default_factory=dict)
    announced: dict[FileKey, str] = field(default_factory=dict)
    cut_first_download: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)
    ranges: list[str | None] = field(default_factory=list)
    url: str = ""

    @classmethod
    def of_repository(cls, repo_id: str, files: dict[str, bytes]) -> FakeHub:
        """A hub holding one repository's files."""
        return cls(files={(repo_id, path): data for path, data in files.items()})

    def _repository(self, request: web.Request) -> dict[str, bytes]:
        self.requests.append((request.method, request.path))
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        held = {path: data for (repo, path), data in self.files.items() if repo == repo_id}
        if not held:
            raise web.HTTPNotFound(headers={"X-Error-Code": "RepoNotFound"}, text="Repository not found")
        return held

    async def info(self, request: web.Request) -> web.Response:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        siblings = [{"rfilename": path} for path in self._repository(request)]
        return web.json_response({"id": repo_id, "modelId": repo_id, "sha": COMMIT, "siblings": siblings})

    async def tree(self, request: web.Request) -> web.Response:
        entries = [
            {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for path, data in self._repository(request).items()
        ]
        return web.json_response(entries)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        path = request.match_info["path"]
        body = self._repository(request).get(path)
        if body is None:
            raise web.HTTPNotFound(headers={"X-Error-Code": "EntryNotFound"}, text="Entry not found")
        sha = self.announced.get((repo_id, path), hashlib.sha256(body).hexdigest())
        headers = {
            "X-Repo-Commit": COMMIT,
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(body)),
            "ETag": f'"{sha}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if request.method == "HEAD":
            return web.Response(headers={**headers, "Content-Length": str(len(body))})
        return await self._send(request, body, headers)

    async def _send(self, request: web.Request, body: bytes, headers: dict[str, str]) -> web.StreamResponse:
        requested = request.headers.get("Range")
        self.ranges.append(requested)
        start = int(requested.split("=")[1].split("-")[0]) if requested else 0
        chunk = body[start:]
        if requested:
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
        response = web.StreamResponse(status=206 if requested else 200, headers=headers)
        response.content_length = len(chunk)
        await response.prepare(request)
        if self.cut_first_download and len(self.ranges) == 1 and request.transport is not None:
            await response.write(chunk[: len(chunk) // 2])
            request.transport.close()  # what was written is flushed, then the connection drops mid-body
            return response
        await response.write(chunk)
        await response.write_eof()
        return response


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
