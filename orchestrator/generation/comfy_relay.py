# SPDX-License-Identifier: Apache-2.0
"""Turning a running prompt's ComfyUI events into job events, without holding the prompt up.

ComfyUI's websocket messages arrive faster than rows can be written, and the prompt's run waits for each
callback; so the callback only queues, and one writer task per job writes the rows in order.

* ``Progress`` -> ``job.progress`` {stage, step, total, percent, it_per_s, eta_s, node}; stage is
  ``sampling`` for sampler nodes, ``decoding`` for VAE decoders, ``processing`` for anything else.
  Every tick is kept, but they are written together, ``progress_interval_s`` after the first of them, and
  a sampler's last step at once with those held (the VAE decode runs meanwhile, so the job's end does not
  wait for that write); what is still held when an output node ran, a preview comes or the run ends goes
  then. Each write wakes Postgres (an fsync), the event stream and its readers while ComfyUI computes:
  on the real ComfyUI here (CPU, 64 px, 4 steps, two progress messages) each write made its execution
  ~1.2 ms slower, and a GPU sampling 20-50 steps a second would cost as many writes a second and job.
  Holding every tick until the output node ran was measured and dropped: on the stand-in that write then
  lands on the job's end (+1.2-1.4 ms overhead).
* ``Preview`` -> the latest preview image goes to storage (``generations/<id>/preview``, overwritten) and a
  ``job.preview`` {url, mime, step, node} event points at it, at most one per ``preview_interval_s`` (and,
  where the content policy screens the job's images, only when the classifier does not find it explicit); the
  events table never holds image bytes.
* ``Executing`` / ``Cached`` are not written (the executing node is the ``node`` of progress; cached nodes
  are reported in the result).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from orchestrator.comfy import Event, Executed, Preview, Progress
from orchestrator.events.types import EventType
from orchestrator.jobs.kinds import JobContext, progress_data
from orchestrator.storage import Storage

log = logging.getLogger(__name__)

_STOP = object()
Write = Callable[[], Awaitable[None]]


def stage_of(class_type: str | None) -> str:
    """The progress stage a node class stands for."""
    name = (class_type or "").lower()
    if "sampler" in name:
        return "sampling"
    if name.startswith("vaedecode"):
        return "decoding"
    return "processing"


PreviewCheck = Callable[[bytes], Awaitable[bool]]


class ComfyEventRelay:
    """Queues job events from a prompt's callbacks; a writer task stores them in order."""

    def __init__(
        self,
        ctx: JobContext,
        storage: Storage,
        graph: Mapping[str, Any],
        *,
        preview_key: str,
        preview_url: str,
        preview_interval_s: float,
        progress_interval_s: float = 0.0,
        preview_allowed: PreviewCheck | None = None,
    ) -> None:
        self._ctx = ctx
        self._preview_allowed = preview_allowed
        self._storage = storage
        self._graph = graph
        self._preview_key = preview_key
        self._preview_url = preview_url
        self._preview_interval_s = preview_interval_s
        self._last_preview: float | None = None
        self._progress_interval_s = progress_interval_s
        self._ticks: list[dict[str, Any]] = []
        self._ticks_due: asyncio.TimerHandle | None = None
        self._step = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._error: BaseException | None = None
        self._writer = asyncio.create_task(self._write_all(), name=f"relay-{ctx.job.id}")

    async def on_event(self, event: Event) -> None:
        """The prompt run's callback: queue what the event becomes (never waits for the database)."""
        if self._error is not None:
            return
        if isinstance(event, Progress):
            self._step = event.step
            self._ticks.append(self._progress_data(event))
            self._write_ticks_when_due(last_step=event.total > 0 and event.step >= event.total)
        elif isinstance(event, Executed):
            self._queue_ticks()
        elif isinstance(event, Preview) and self._preview_due():
            self._queue_ticks()  # the progress before it goes first
            self._queue.put_nowait(lambda: self._preview(event, self._step))

    def _write_ticks_when_due(self, *, last_step: bool) -> None:
        if last_step or self._progress_interval_s <= 0:
            self._queue_ticks()
        elif self._ticks_due is None:
            self._ticks_due = asyncio.get_running_loop().call_later(self._progress_interval_s, self._queue_ticks)

    def _take_ticks(self) -> list[dict[str, Any]]:
        if self._ticks_due is not None:
            self._ticks_due.cancel()
            self._ticks_due = None
        ticks, self._ticks = self._ticks, []
        return ticks

    def _queue_ticks(self) -> None:
        """Queue one write of the progress ticks held."""
        if ticks := self._take_ticks():
            self._queue.put_nowait(lambda: self._ctx.record_progress(ticks))

    def _preview_due(self) -> bool:
        if self._preview_interval_s <= 0:
            return False
        now = time.monotonic()
        if self._last_preview is not None and now - self._last_preview < self._preview_interval_s:
            return False
        self._last_preview = now
        return True

    def _class_of(self, node: str | None) -> str | None:
        spec = self._graph.get(node) if node is not None else None
        return spec.get("class_type") if isinstance(spec, Mapping) else None

    def _progress_data(self, event: Progress) -> dict[str, Any]:
        it_per_s = round(event.it_per_s, 3) if event.it_per_s is not None else None
        eta_s = round(event.eta_s, 2) if event.eta_s is not None else None
        stage = stage_of(self._class_of(event.node))
        return progress_data(stage, event.step, event.total, it_per_s=it_per_s, eta_s=eta_s, node=event.node)

    async def _preview(self, event: Preview, step: int) -> None:
        if self._preview_allowed is not None and not await self._preview_allowed(event.image):
            return  # the content policy found it explicit: not stored, not announced
        try:
            await self._storage.put(self._preview_key, event.image, event.mime)
        except Exception as exc:  # previews are a courtesy: a storage hiccup must not fail the job
            log.warning("job %s: preview not stored: %s", self._ctx.job.id, exc)
            return
        data = {"url": f"{self._preview_url}?step={step}", "mime": event.mime, "step": step, "node": event.node}
        await self._ctx.emit(EventType.PREVIEW, data)

    async def _write_all(self) -> None:
        while (write := await self._queue.get()) is not _STOP:
            if self._error is not None:
                continue
            try:
                await write()
            except Exception as exc:  # kept and raised by close(): the job decides what it means
                self._error = exc

    async def close(self) -> None:
        """Wait until everything queued (and every progress tick held) is written; raise the first write error,
        if any."""
        self._queue_ticks()
        self._queue.put_nowait(_STOP)
        await self._writer
        if self._error is not None:
            raise self._error

    async def abort(self) -> None:
        """Drop what is queued and stop the writer (the job is being cancelled)."""
        self._take_ticks()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
