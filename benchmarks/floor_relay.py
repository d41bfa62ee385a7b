# SPDX-License-Identifier: Apache-2.0
"""The floor under ``bench_generation_overhead``'s arms: the least a service in front of ComfyUI can do, run as
its own process the way Atelier is, so that its extra over the direct client is what the extra hop alone costs
this machine (and, with ``--database-url``, the hop plus the two durable commits a job on record needs).

``POST /run {"prompt": <API graph>, "output_node": <id>}`` queues the graph on ComfyUI under a prompt id of its
own and answers ``{"prompt_id"}`` once that output node said ``executed`` on its one websocket. Nothing else:
no request model, no validation against ``/object_info``, no policy, no images read, no event stream. With a
database it also does what Atelier's guarantees cost at the least, each an autocommitted statement on a warm
asyncpg connection: the job's row and its first event are written while the prompt goes to ComfyUI (both
awaited before the answer), and the job's success and its event are committed before it answers.

    python -m benchmarks.floor_relay --comfyui URL --port N [--database-url postgresql://...]

Atelier's own overhead minus this relay's is what its features and code cost above the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
import uvloop
from aiohttp import web

_TABLES = """
CREATE TABLE IF NOT EXISTS floor_jobs (id uuid PRIMARY KEY, status text NOT NULL, payload jsonb NOT NULL,
                                       result jsonb, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS floor_events (id bigserial PRIMARY KEY, job_id uuid NOT NULL REFERENCES floor_jobs,
                                         type text NOT NULL, data jsonb NOT NULL DEFAULT '{}');
"""
_ACCEPT = """
WITH job AS (INSERT INTO floor_jobs (id, status, payload) VALUES ($1, 'running', $2::jsonb) RETURNING id)
INSERT INTO floor_events (job_id, type) SELECT id, 'job.queued' FROM job
"""
_SUCCEED = """
WITH job AS (UPDATE floor_jobs SET status = 'succeeded', result = $2::jsonb WHERE id = $1 AND status = 'running'
             RETURNING id)
INSERT INTO floor_events (job_id, type, data) SELECT id, 'job.succeeded', $2::jsonb FROM job
"""


class FloorRelay:
    """One websocket to ComfyUI, one HTTP session, at most one database connection."""

    def __init__(self, comfy: str, database_url: str | None) -> None:
        self.comfy = comfy.rstrip("/")
        self.database_url = database_url
        self.client_id = f"floor-{uuid.uuid4().hex[:8]}"
        self._ends: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._http: aiohttp.ClientSession | None = None
        self._db: asyncpg.Connection | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, _app: web.Application) -> None:
        """Open the session, the websocket and the database connection (tables made when missing)."""
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(f"{self.comfy.replace('http', 'ws', 1)}/ws?clientId={self.client_id}")
        self._reader = asyncio.create_task(self._read(self._ws))
        if self.database_url:
            self._db = await asyncpg.connect(self.database_url)
            await self._db.execute(_TABLES)

    async def stop(self, _app: web.Application) -> None:
        """Close them."""
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._db is not None:
            await self._db.close()
        if self._http is not None:
            await self._http.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data["type"] == "executed":
                end = self._ends.get((data["data"]["prompt_id"], str(data["data"]["node"])))
                if end is not None and not end.done():
                    end.set_result(data["data"].get("output") or {})

    async def run(self, request: web.Request) -> web.Response:
        """Queue the graph, wait for its output node, answer (with the commits around it given a database)."""
        assert self._http is not None
        body = await request.json()
        prompt_id = str(uuid.uuid4())
        end = self._ends[(prompt_id, str(body["output_node"]))] = asyncio.get_running_loop().create_future()
        try:
            queued = self._queue(body["prompt"], prompt_id)
            if self._db is not None:
                await asyncio.gather(queued, self._db.execute(_ACCEPT, uuid.UUID(prompt_id), json.dumps(body)))
            else:
                await queued
            output = await asyncio.wait_for(end, 300)
        finally:
            self._ends.pop((prompt_id, str(body["output_node"])), None)
        if self._db is not None:
            await self._db.execute(_SUCCEED, uuid.UUID(prompt_id), json.dumps(output))
        return web.json_response({"prompt_id": prompt_id})

    async def _queue(self, graph: dict[str, Any], prompt_id: str) -> None:
        assert self._http is not None
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        async with self._http.post(f"{self.comfy}/prompt", json=body) as response:
            if response.status != 200:
                raise web.HTTPBadGateway(text=await response.text())


async def _ready(_request: web.Request) -> web.Response:
    return web.Response(text="ready")


def app(comfy: str, database_url: str | None) -> web.Application:
    """The relay as an aiohttp application."""
    relay = FloorRelay(comfy, database_url)
    application = web.Application()
    application.router.add_post("/run", relay.run)
    application.router.add_get("/ready", _ready)
    application.on_startup.append(relay.start)
    application.on_cleanup.append(relay.stop)
    return application


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", required=True, help="the ComfyUI (or stand-in) URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", help="an asyncpg DSN: also commit the job's row and its success")
    args = parser.parse_args()
    web.run_app(app(args.comfyui, args.database_url), host="127.0.0.1", port=args.port, print=None,
                loop=uvloop.new_event_loop())  # fmt: skip
