# SPDX-License-Identifier: Apache-2.0
"""Run one prompt on one backend, from submission to its final result.

The websocket says when the prompt is done and, when the run heard every message of it, how it ended
(:mod:`orchestrator.comfy.record`: outputs from ``executed``, the end from ``execution_*``), so the run
ends at the terminal message with no ``/history`` round trip -- or, given the graph's output nodes, as soon
as the last of them said ``executed``. Otherwise ``/history`` says how it ended, and the two are raced:
whenever the socket drops or comes back, whenever nothing has arrived for ``watchdog_s``, and every
``poll_s`` while the socket is down, ``/history`` (then ``/queue``) is checked, so a lost websocket never
hangs a run. A backend that does not answer for ``lost_after_s``,
or that has forgotten the prompt, raises :class:`BackendLost`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.comfy.client import ComfyClient, canonical_prompt_id
from orchestrator.comfy.connection import ComfyConnection, ConnectionSignal, Subscription
from orchestrator.comfy.errors import BackendHTTPError, BackendLost, BackendUnavailable, ComfyError
from orchestrator.comfy.events import (
    Cached,
    Event,
    EventCallback,
    Executed,
    Executing,
    Preview,
    RunInterrupted,
    RunResult,
)
from orchestrator.comfy.history import output_images, result_from_history
from orchestrator.comfy.progress import ProgressMeter
from orchestrator.comfy.protocol import PreviewFrame, WsMessage
from orchestrator.comfy.record import SocketRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Timing of the history checks that back up the websocket."""

    watchdog_s: float = 30.0
    poll_s: float = 1.0
    lost_after_s: float = 20.0
    connect_wait_s: float = 5.0
    cancel_timeout_s: float = 5.0


class RunState(enum.Enum):
    """Where the prompt is, as far as this run knows."""

    NEW = "new"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


async def _ignore_event(event: Event) -> None:
    return None


class PromptRun:
    """One prompt on one backend: ``await run.run()`` for the result, ``await run.cancel()`` to stop it."""

    def __init__(
        self,
        client: ComfyClient,
        connection: ComfyConnection,
        graph: Mapping[str, Any],
        prompt_id: str,
        on_event: EventCallback | None = None,
        options: RunOptions | None = None,
        *,
        on_submitted: Callable[[], None] | None = None,
        output_nodes: Collection[str] = (),
    ) -> None:
        self.prompt_id = canonical_prompt_id(prompt_id)
        self.state = RunState.NEW
        self.queue_number: int | None = None
        #: Set once ComfyUI has accepted the prompt into its queue.
        self.submitted = asyncio.Event()
        self._client = client
        self._conn = connection
        self._graph = graph
        self._on_event = on_event or _ignore_event
        self._on_submitted = on_submitted
        self._output_nodes = tuple(output_nodes)
        self._opt = options or RunOptions()
        self._meter = ProgressMeter()
        self._cancel_requested = False
        self._cancel_sent = False
        self._done_seen = False
        self._executing: str | None = None
        self._unreachable_since: float | None = None
        self._record = SocketRecord()

    async def run(self) -> RunResult:
        """Submit the prompt and follow it to its end.

        Raises :class:`~orchestrator.comfy.errors.PromptRejected` if ComfyUI refuses the graph,
        :class:`~orchestrator.comfy.errors.BackendUnavailable` if it cannot be submitted and
        :class:`~orchestrator.comfy.errors.BackendLost` if the backend goes away meanwhile.
        """
        if self._cancel_requested:
            return RunInterrupted(self.prompt_id, before_start=True, backend=self._client.base_url)
        sub = self._conn.subscribe(self.prompt_id)
        try:
            if not self._conn.connected:
                await self._conn.wait_connected(self._opt.connect_wait_s)
            if not self._conn.registered:
                self._record.broken()  # its first messages may go nowhere: the end comes from /history
            self.queue_number = await self._client.submit(self._graph, self.prompt_id)
            self.state = RunState.PENDING
            self.submitted.set()
            if self._on_submitted is not None:
                self._on_submitted()
            if self._cancel_requested:
                await self._send_cancel()
            result = await self._follow(sub)
            self.state = RunState.DONE
            return result
        except BaseException as exc:
            if self.state in (RunState.PENDING, RunState.RUNNING) and not isinstance(exc, BackendUnavailable):
                await asyncio.shield(self._cancel_quietly())
            raise
        finally:
            self._conn.unsubscribe(sub)

    async def cancel(self) -> None:
        """Stop the prompt: deleted from ComfyUI's queue if still pending, interrupted if running.

        :meth:`run` then returns :class:`RunInterrupted` (``before_start`` when it never ran), or
        the prompt's real result if it finished first.
        """
        self._cancel_requested = True
        if self.state in (RunState.PENDING, RunState.RUNNING):
            await self._send_cancel()

    async def _send_cancel(self) -> None:
        self._cancel_sent = True
        await self._client.delete_queued([self.prompt_id])
        # Only interrupt when it is ours that runs: servers before prompt-aware /interrupt stop anything.
        if self.prompt_id in (await self._client.queue()).running:
            await self._client.interrupt(self.prompt_id)
        self._conn.wake(self.prompt_id)

    async def _cancel_quietly(self) -> None:
        try:
            await asyncio.wait_for(self._send_cancel(), self._opt.cancel_timeout_s)
        except (ComfyError, TimeoutError) as exc:
            log.warning("comfy %s: could not cancel prompt %s: %s", self._client.base_url, self.prompt_id, exc)

    async def _follow(self, sub: Subscription) -> RunResult:
        while True:
            urgent = self._done_seen or self._unreachable_since is not None or not self._conn.connected
            item = await sub.get(self._opt.poll_s if urgent else self._opt.watchdog_s)
            if isinstance(item, WsMessage):
                ended = self._record.add(item)
                done = await self._handle(item)
                if ended and (heard := self._record.result(self.prompt_id, backend=self._backend)) is not None:
                    return heard
                if item.type == "executed" and self._output_nodes:
                    finished = self._record.outputs_done(self.prompt_id, self._output_nodes, backend=self._backend)
                    if finished is not None:
                        return finished
                if not done:
                    continue
                self._done_seen = True
            elif isinstance(item, PreviewFrame):
                await self._on_event(Preview(item.image, item.mime, item.node))
                continue
            elif item is ConnectionSignal.LOST or item is ConnectionSignal.RESTORED:
                self._record.broken()  # ComfyUI replays nothing to a new socket
                if item is ConnectionSignal.LOST:
                    log.info("comfy %s: socket lost while prompt %s in flight", self._client.base_url, self.prompt_id)
            result = await self._reconcile()
            if result is not None:
                return result
            if item is None and not urgent and self.state is RunState.RUNNING:
                await self._conn.reconnect()  # running but silent: our socket may be unregistered

    async def _handle(self, message: WsMessage) -> bool:
        """Turn one message into events; True once ComfyUI says the prompt is done."""
        kind, data = message.type, message.data
        if kind == "execution_start":
            self.state = RunState.RUNNING
        elif kind == "execution_cached":
            self.state = RunState.RUNNING
            await self._on_event(Cached(tuple(str(n) for n in data.get("nodes") or ())))
        elif kind == "executing":
            node = data.get("node")
            if node is None:
                return True
            self.state = RunState.RUNNING
            if str(node) != self._executing:  # a reconnected socket gets the running node again
                self._executing = str(node)
                self._meter.node_started(str(node), time.monotonic())
                await self._on_event(Executing(str(node), self._class_of(str(node))))
        elif kind == "progress":
            node = data.get("node")
            value, total = data.get("value"), data.get("max")
            if isinstance(value, int | float) and isinstance(total, int | float):
                node_id = str(node) if node is not None else None
                await self._on_event(self._meter.update(node_id, int(value), int(total), time.monotonic()))
        elif kind == "executed":
            node, output = data.get("node"), data.get("output")
            if node is not None and isinstance(output, Mapping):
                await self._on_event(Executed(str(node), output_images({str(node): output})))
        elif kind in ("execution_error", "execution_interrupted"):
            log.info("comfy %s: prompt %s %s", self._client.base_url, self.prompt_id, kind)
        return False

    @property
    def _backend(self) -> str:
        return self._client.base_url

    def _class_of(self, node: str) -> str | None:
        spec = self._graph.get(node)
        class_type = spec.get("class_type") if isinstance(spec, Mapping) else None
        return class_type if isinstance(class_type, str) else None

    async def _reconcile(self) -> RunResult | None:
        """Ask the backend how the prompt stands; the result once it has ended, else None."""
        try:
            result = await self._check_backend()
        except BackendLost:
            raise
        except (BackendUnavailable, BackendHTTPError) as exc:
            now = time.monotonic()
            if self._unreachable_since is None:
                self._unreachable_since = now
            if now - self._unreachable_since >= self._opt.lost_after_s:
                raise BackendLost(
                    f"{self._client.base_url} stopped answering during prompt {self.prompt_id}: {exc}",
                    backend=self._client.base_url,
                ) from exc
            return None
        self._unreachable_since = None
        return result

    async def _check_backend(self) -> RunResult | None:
        entry = await self._client.history(self.prompt_id)
        if entry is None:
            queue = await self._client.queue()
            if self.prompt_id in queue.running:
                self.state = RunState.RUNNING
                self._conn.current_prompt = self.prompt_id
                return None
            if self.prompt_id in queue.pending:
                self.state = RunState.PENDING
                return None
            entry = await self._client.history(self.prompt_id)  # it may have ended between the calls
        if entry is not None:
            return result_from_history(self.prompt_id, entry, backend=self._client.base_url)
        if self._cancel_sent:
            return RunInterrupted(self.prompt_id, before_start=True, backend=self._client.base_url)
        raise BackendLost(
            f"{self._client.base_url} no longer knows prompt {self.prompt_id} (restarted?)",
            backend=self._client.base_url,
        )


async def run_prompt(
    client: ComfyClient,
    connection: ComfyConnection,
    graph: Mapping[str, Any],
    prompt_id: str,
    on_event: EventCallback | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Submit ``graph`` as ``prompt_id`` and return its result (see :class:`PromptRun`)."""
    return await PromptRun(client, connection, graph, prompt_id, on_event, options).run()
