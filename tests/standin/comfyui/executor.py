# SPDX-License-Identifier: Apache-2.0
"""The stand-in's prompt queue and worker: runs prompts by ComfyUI's rules with recorded timing.

Per prompt it sends what the recordings show, in the same order: ``execution_start``,
``execution_cached``, then per node ``progress_state`` (running), ``executing``, for samplers
per step ``progress_state``/``progress``/preview, for output nodes ``executed``, then
``progress_state`` (finished); finally ``execution_success`` | ``execution_error`` |
``execution_interrupted``, the history entry, ``status`` and ``executing`` with node null.
Execution messages go only to the submitting client (none without a client id); progress
and previews to it, or to everyone without one; ``status`` to everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

from tests.standin.comfyui.files import FileStore, png_bytes
from tests.standin.comfyui.graph import ExecutionList, cache_keys
from tests.standin.comfyui.loading import LoadKind, ModelKey
from tests.standin.comfyui.prompt_run import Interrupted, NodeFailure, PromptRun, now_ms
from tests.standin.comfyui.recordings import Recorded
from tests.standin.comfyui.sockets import SocketHub

log = logging.getLogger(__name__)


@dataclass
class Task:
    """One queued prompt (``/queue`` lists it as ``[number, prompt_id, prompt, extra_data, outputs]``)."""

    number: int
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    messages: list[list[Any]] = field(default_factory=list)

    @property
    def client_id(self) -> str | None:
        """The submitting client, if it gave one."""
        value = self.extra_data.get("client_id")
        return value if isinstance(value, str) and value else None

    def as_item(self) -> list[Any]:
        """The task as ``/queue`` shows it."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class Gate:
    """Test knob: hold every sampler at a given step until released (or interrupted)."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.reached = asyncio.Event()
        self._open = asyncio.Event()
        self._open.set()

    def hold(self, step: int) -> None:
        """Hold samplers when they report ``step``."""
        self.step = step
        self.reached.clear()
        self._open.clear()

    def release(self) -> None:
        """Let held and future samplers run on."""
        self.step = None
        self._open.set()

    async def at_step(self, step: int, interrupted: asyncio.Event) -> None:
        """Called by samplers after each step; returns when they may go on."""
        if self.step is None or step != self.step:
            return
        self.reached.set()
        waiters = {asyncio.ensure_future(self._open.wait()), asyncio.ensure_future(interrupted.wait())}
        _, rest = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in rest:
            waiter.cancel()


class Executor:
    """Queue, history, cache and the single worker of one stand-in server."""

    def __init__(
        self,
        hub: SocketHub,
        files: FileStore,
        rec: Recorded,
        *,
        time_scale: float,
        previews: bool,
        fail_classes: dict[str, str],
        textured_images: bool = False,
    ) -> None:
        self.hub = hub
        self.files = files
        self.rec = rec
        self.time_scale = time_scale
        self.previews = previews
        self.textured_images = textured_images
        self.fail_classes = fail_classes
        self.object_info: dict[str, Any] = rec.object_info
        self.pending: list[Task] = []
        self.running: Task | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, dict[str, Any] | None] = {}
        #: The model the last sampler ran with (what a next prompt finds loaded); None after ``/free``.
        self.loaded: ModelKey | None = None
        #: Every switch charged: (prompt id, kind), in order (for tests).
        self.loads: list[tuple[str, LoadKind]] = []
        self.last_node_id: str | None = None
        self.interrupted = asyncio.Event()
        self.gate = Gate()
        #: Test knob: a prompt that ran every node ends once this is set.
        self.end_gate = asyncio.Event()
        self.end_gate.set()
        self.number = 0
        self._work = asyncio.Event()
        self._free = False
        self._unload = False

    def queue_remaining(self) -> int:
        """Pending + running, as ``status`` reports it."""
        return len(self.pending) + (1 if self.running else 0)

    def queue_info(self) -> dict[str, Any]:
        """``GET /prompt`` and the ``status`` payload."""
        return {"exec_info": {"queue_remaining": self.queue_remaining()}}

    async def broadcast_status(self) -> None:
        """``status`` to every client."""
        await self.hub.send_json("status", {"status": self.queue_info()}, None)

    async def put(self, task: Task) -> None:
        """Queue a validated prompt."""
        self.pending.append(task)
        self._work.set()
        await self.broadcast_status()

    async def delete(self, prompt_ids: list[str]) -> None:
        """Drop pending prompts (running ones are not touched)."""
        before = len(self.pending)
        self.pending = [t for t in self.pending if t.prompt_id not in prompt_ids]
        if len(self.pending) != before:
            await self.broadcast_status()

    async def clear(self) -> None:
        """Drop every pending prompt."""
        self.pending = []
        await self.broadcast_status()

    def interrupt(self, prompt_id: str | None) -> None:
        """Interrupt the running prompt (only if it is ``prompt_id`` when one is given)."""
        if prompt_id is None or (self.running is not None and self.running.prompt_id == prompt_id):
            self.interrupted.set()

    def free(self, free_memory: bool, unload_models: bool) -> None:
        """``/free``, taken before the next prompt starts (after the running one, as ComfyUI does): with
        ``free_memory`` the cache is dropped; either flag unloads the model (the next prompt loads its own)."""
        self._free = self._free or free_memory
        self._unload = self._unload or free_memory or unload_models

    async def serve(self) -> None:
        """The worker: run pending prompts one at a time, lowest number first."""
        while True:
            await self._work.wait()
            if not self.pending:
                self._work.clear()
                continue
            task = min(self.pending, key=lambda t: t.number)
            self.pending.remove(task)
            self.running = task
            if self._free:
                self.cache.clear()
                self._free = False
            if self._unload:
                self.loaded = None
                self._unload = False
            await self.broadcast_status()
            try:
                await self._execute(task)
            except Exception as exc:  # a stand-in bug: end the prompt loudly instead of hanging clients
                log.exception("stand-in: prompt %s crashed", task.prompt_id)
                await self._crashed(task, exc)
            finally:
                self.running = None
                self.last_node_id = None

    async def send_exec(self, task: Task, kind: str, data: dict[str, Any], *, record: bool = False) -> None:
        """An execution message: to the submitting client only; recorded into history if asked."""
        if record:
            task.messages.append([kind, data])
        if task.client_id is not None:
            await self.hub.send_json(kind, data, task.client_id)

    async def _execute(self, task: Task) -> None:
        self.interrupted.clear()
        pid = task.prompt_id
        await self.send_exec(task, "execution_start", {"prompt_id": pid, "timestamp": now_ms()}, record=True)
        keys = cache_keys(task.prompt)
        cached = [n for n in task.prompt if keys[n] in self.cache]
        live = set(keys.values())
        self.cache = {k: v for k, v in self.cache.items() if k in live}
        await self.send_exec(
            task, "execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": now_ms()}, record=True
        )
        run = PromptRun(self, task)
        elist = ExecutionList(task.prompt, task.outputs, set(cached), run.is_output)
        outcome = "success"
        try:
            while (node := elist.next()) is not None:
                if node in cached:
                    await run.replay_cached(node, self.cache.get(keys[node]))
                else:
                    self.cache[keys[node]] = await run.run_node(node)
        except Interrupted as stop:
            outcome = "error"
            await self.send_exec(
                task,
                "execution_interrupted",
                {
                    "prompt_id": pid,
                    "node_id": stop.node_id,
                    "node_type": run.class_of(stop.node_id),
                    "executed": run.executed,
                    "timestamp": now_ms(),
                },
                record=True,
            )
        except NodeFailure as failure:
            outcome = "error"
            await self.send_exec(task, "execution_error", run.error_data(failure), record=True)
        else:
            await self.end_gate.wait()
            await self.send_exec(task, "execution_success", {"prompt_id": pid, "timestamp": now_ms()}, record=True)
        self.history[pid] = run.history_entry(outcome)
        self.running = None
        self.last_node_id = None
        await self.broadcast_status()
        await self.send_exec(task, "executing", {"node": None, "prompt_id": pid})

    async def _crashed(self, task: Task, exc: Exception) -> None:
        data: dict[str, Any] = {
            "prompt_id": task.prompt_id,
            "node_id": self.last_node_id,
            "node_type": None,
            "executed": [],
            "exception_message": f"stand-in bug: {exc!r}",
            "exception_type": "standin.InternalError",
            "traceback": [],
            "current_inputs": {},
            "current_outputs": [],
            "timestamp": now_ms(),
        }
        await self.send_exec(task, "execution_error", data, record=True)
        self.history[task.prompt_id] = {
            "prompt": task.as_item(),
            "outputs": {},
            "meta": {},
            "status": {"status_str": "error", "completed": False, "messages": task.messages},
        }
        self.running = None
        await self.broadcast_status()
        await self.send_exec(task, "executing", {"node": None, "prompt_id": task.prompt_id})

    async def sleep(self, recorded_seconds: float) -> None:
        """Wait the recorded time, scaled."""
        await asyncio.sleep(recorded_seconds * self.time_scale)

    def preview_png(self, task: Task, step: int) -> bytes:
        """A small changing preview image."""
        shade = zlib.crc32(f"{task.prompt_id}:{step}".encode()) & 0xFFFFFF
        return png_bytes(8, 8, (shade >> 16, (shade >> 8) & 0xFF, shade & 0xFF))

    async def stop(self, worker: asyncio.Task[None] | None) -> None:
        """Cancel the worker (a dying server)."""
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
