# SPDX-License-Identifier: Apache-2.0
"""The arms of ``bench_generation_overhead``: three ways of getting the same prompt run by ComfyUI.

* direct: a minimal client -- ``POST /prompt`` with its own prompt id, then wait on its websocket for
  ``executing`` with node null (ComfyUI's own example client does exactly this);
* Atelier: ``POST /v1/generations`` (the service runs as its own process, ``atelier serve``) -> the
  ``job.succeeded`` event on an SSE stream of the caller's events (``GET /v1/events``, opened once);
* floor relays (:mod:`benchmarks.floor_relay`, ``--floor``): the least a service in front of ComfyUI does, as its
  own process; one without a database (the extra hop alone) and one that also commits the job's row and its
  success (the hop plus the two durable commits every job on record needs);
* comfyui-api (SaladTechnologies/comfyui-api, MIT, a Node program run beside ComfyUI): its ``POST /prompt``
  ``{"prompt": <API graph>, "id": <ours>}`` answers once the prompt is done, with the images inline
  (``{"id", "images": [base64], "filenames", "stats"}``). Inside, it queues the graph under a prompt id of
  ComfyUI's choosing, waits for ``execution_success`` on its websocket while polling ``/history``, reads the
  files from ComfyUI's output folder (so it must run beside it, given that folder) and deletes them. It
  prefixes every ``filename_prefix`` with our id, which is how its prompt is found in ``/history`` here.

Every arm measures its client-visible wall time and reads ComfyUI's own execution time (``execution_start``
-> ``execution_success`` timestamps) and queue wait from the prompt's history entry.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from benchmarks.harness import JobEnds
from tests.support.comfy_history import history_entry
from tests.support.service import free_port, wait_until_answering

#: comfyui-api reads ``<output dir>/<filename>`` and ignores ComfyUI's subfolder: its prefix has no slash.
SAL_PREFIX = "bench_sal"


@dataclass(frozen=True)
class Run:
    """One measured generation. Wall-clock instants (``posted_at``, ``received_at``, ComfyUI's execution
    stamps) are epoch milliseconds; ComfyUI writes its stamps in whole milliseconds."""

    path: str
    wall_ms: float
    execution_ms: float
    queue_wait_ms: float
    prompt_id: str = ""
    posted_at: float = 0.0
    received_at: float = 0.0
    execution_started_at: float = 0.0
    execution_ended_at: float = 0.0
    #: Atelier: from the POST to its 202 (the job accepted).
    accepted_ms: float | None = None

    @property
    def overhead_ms(self) -> float:
        """Client-visible time outside ComfyUI's execution."""
        return self.wall_ms - self.execution_ms

    @property
    def lead_ms(self) -> float:
        """The overhead before the work: from the client's POST to ComfyUI's ``execution_start``."""
        return self.execution_started_at - self.posted_at

    @property
    def tail_ms(self) -> float:
        """The overhead after it: from ComfyUI's ``execution_success`` to the client holding the result."""
        return self.received_at - self.execution_ended_at


def timings_of(entry: Mapping[str, Any]) -> tuple[float, float]:
    """ComfyUI's execution time and how long the prompt waited in its queue, from its history entry."""
    stamps = _stamps(entry)
    created = entry["prompt"][3].get("create_time", stamps["execution_start"])
    return float(stamps["execution_success"] - stamps["execution_start"]), float(stamps["execution_start"] - created)


def _stamps(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}


def measured(
    path: str, prompt_id: str, entry: Mapping[str, Any], posted_at: float, wall_ms: float, **extra: Any
) -> Run:
    """A run posted at ``posted_at`` (epoch ms) that took ``wall_ms``, with ComfyUI's figures from its history
    entry."""
    execution, waited = timings_of(entry)
    stamps = _stamps(entry)
    return Run(path, wall_ms, execution, waited, prompt_id, posted_at, posted_at + wall_ms,
               float(stamps["execution_start"]), float(stamps["execution_success"]), **extra)  # fmt: skip


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class DirectClient:
    """POST /prompt + wait for ``executing`` node null on our websocket."""

    def __init__(self, http: aiohttp.ClientSession, comfy: str) -> None:
        self.http = http
        self.comfy = comfy
        self.client_id = f"bench-direct-{uuid.uuid4().hex[:8]}"
        self._done: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the websocket (once)."""
        ws = await self.http.ws_connect(f"{self.comfy.replace('http', 'ws', 1)}/ws?clientId={self.client_id}")
        self._reader = asyncio.create_task(self._read(ws))

    async def close(self) -> None:
        """Stop reading."""
        await _stop(self._reader)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data["type"] == "executing" and data["data"].get("node") is None:
                future = self._done.get(data["data"].get("prompt_id"))
                if future is not None and not future.done():
                    future.set_result(None)

    async def run(self, graph: dict[str, Any]) -> Run:
        """One prompt, timed from the POST to its ``executing`` null."""
        prompt_id = str(uuid.uuid4())
        self._done[prompt_id] = asyncio.get_running_loop().create_future()
        posted_at = time.time() * 1000
        started = time.perf_counter()
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id}
        async with self.http.post(f"{self.comfy}/prompt", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"ComfyUI refused the prompt: {await response.text()}")
        try:
            await asyncio.wait_for(self._done[prompt_id], 300)
        finally:
            self._done.pop(prompt_id, None)
        wall = (time.perf_counter() - started) * 1000
        return measured("direct", prompt_id, await history_entry(self.http, self.comfy, prompt_id), posted_at, wall)


class AtelierClient:
    """POST /v1/generations + wait for job.succeeded on one long-lived SSE stream."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str], comfy: str) -> None:
        self.http = http
        self.url = url
        self.headers = headers
        self.comfy = comfy
        self._ends = JobEnds(clock=time.perf_counter)

    async def start(self) -> None:
        """Open the SSE stream of the caller's events (once)."""
        await self._ends.follow(self.http, self.url, self.headers)

    async def close(self) -> None:
        """Stop reading."""
        await self._ends.close()

    async def run(self, body: dict[str, Any]) -> Run:
        """One generation, timed from the POST to its ``job.succeeded`` event."""
        posted_at = time.time() * 1000
        started = time.perf_counter()
        async with self.http.post(f"{self.url}/v1/generations", json=body, headers=self.headers) as response:
            answer = await response.json()
            if response.status != 202:
                raise RuntimeError(f"POST /v1/generations answered {response.status}: {answer}")
        accepted_ms = (time.perf_counter() - started) * 1000
        job_id = answer["id"]
        await self._ends.wait_for([job_id], 300)
        ended, _ = self._ends.at.pop(job_id)
        entry = await history_entry(self.http, self.comfy, job_id)
        return measured("atelier", job_id, entry, posted_at, (ended - started) * 1000, accepted_ms=accepted_ms)


class FloorClient:
    """A floor relay's ``POST /run``: its answer comes once the graph's output node ran."""

    def __init__(self, http: aiohttp.ClientSession, url: str, comfy: str, name: str) -> None:
        self.http = http
        self.url = url
        self.comfy = comfy
        self.name = name

    async def run(self, graph: dict[str, Any], output_node: str) -> Run:
        """One prompt, timed from the POST to the relay's answer."""
        posted_at = time.time() * 1000
        started = time.perf_counter()
        body = {"prompt": graph, "output_node": output_node}
        async with self.http.post(f"{self.url}/run", json=body) as response:
            if response.status != 200:
                raise RuntimeError(f"the floor relay answered {response.status}: {await response.text()}")
            prompt_id = (await response.json())["prompt_id"]
        wall = (time.perf_counter() - started) * 1000
        return measured(self.name, prompt_id, await history_entry(self.http, self.comfy, prompt_id), posted_at, wall)


@asynccontextmanager
async def floor_relay_process(comfy: str, database_url: str | None, log: Path) -> AsyncIterator[str]:
    """:mod:`benchmarks.floor_relay` run beside ``comfy`` (committing to ``database_url`` when given); its URL."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.floor_relay", "--comfyui", comfy, "--port", str(port)]
    if database_url:
        argv += ["--database-url", database_url]
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(*argv, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_answering(f"{url}/ready", exit_code=lambda: process.returncode, name=f"floor relay ({log})")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


class ComfyApiClient:
    """comfyui-api's synchronous ``POST /prompt``: the answer carries the images."""

    def __init__(self, http: aiohttp.ClientSession, url: str, comfy: str) -> None:
        self.http = http
        self.url = url.rstrip("/")
        self.comfy = comfy

    async def run(self, graph: dict[str, Any]) -> Run:
        """One prompt, timed from the POST to the answer with its images."""
        request_id = str(uuid.uuid4())
        posted_at = time.time() * 1000
        started = time.perf_counter()
        async with self.http.post(f"{self.url}/prompt", json={"prompt": graph, "id": request_id}) as response:
            answer = await response.json()
            if response.status != 200:
                raise RuntimeError(f"comfyui-api answered {response.status}: {answer}")
        wall = (time.perf_counter() - started) * 1000
        filenames = answer.get("filenames") or []
        images = [base64.b64decode(image) for image in answer.get("images") or []]
        if not images or len(images) != len(filenames) or not all(i.startswith(b"\x89PNG") for i in images):
            raise RuntimeError(f"comfyui-api answered without the PNG images: {str(answer)[:300]}")
        prompt_id, entry = await self._find(request_id, filenames)
        return measured("comfyui-api", prompt_id, entry, posted_at, wall)

    async def _find(self, request_id: str, filenames: list[str]) -> tuple[str, dict[str, Any]]:
        """The ComfyUI prompt that wrote these files (comfyui-api chose its id), among the latest in history."""
        async with self.http.get(f"{self.comfy}/history", params={"max_items": "8"}) as response:
            entries: dict[str, Any] = await response.json()
        for prompt_id, entry in entries.items():
            written = {
                image.get("filename")
                for output in entry.get("outputs", {}).values()
                for image in output.get("images") or ()
            }
            if set(filenames) <= written and all(name.startswith(request_id) for name in filenames):
                return prompt_id, entry
        raise RuntimeError(f"no ComfyUI prompt in /history wrote {filenames}")


def _launch(program: Path, comfy: str, output_dir: Path, work: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """comfyui-api's command line and environment (its folders made under ``work``)."""
    address = urlsplit(comfy)
    for folder in ("home", "models", "input", "workflows"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    program = program.absolute()
    argv = ["node", str(program)] if program.suffix == ".js" else [str(program)]
    return argv, {
        **os.environ,
        "CMD": "true",  # ComfyUI runs already: the command it would launch it with does nothing
        "DIRECT_ADDRESS": address.hostname or "127.0.0.1",
        "COMFYUI_PORT_HOST": str(address.port or 80),
        "OUTPUT_DIR": str(output_dir),
        "INPUT_DIR": str(work / "input"),
        "COMFY_HOME": str(work / "home"),
        "MODEL_DIR": str(work / "models"),
        "WORKFLOW_DIR": str(work / "workflows"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warn",
    }


@asynccontextmanager
async def comfyui_api_process(program: Path, comfy: str, output_dir: Path, work: Path) -> AsyncIterator[str]:
    """comfyui-api run beside ``comfy`` (``program``: its built entry point, e.g. ``dist/src/index.js``, run
    with ``node``; or its single-file binary); yields its URL once ``/ready`` answers."""
    port = free_port()
    argv, env = _launch(program, comfy, output_dir, work, port)
    log = (work / "comfyui-api.log").open("ab")
    process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_answering(
            f"{url}/ready",
            exit_code=lambda: process.returncode,
            name=f"comfyui-api (see {work / 'comfyui-api.log'})",
            timeout_s=60,
        )
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        log.close()
