# SPDX-License-Identifier: Apache-2.0
"""Writing finished generations' images to a local disk after the job's end instead of before it.

Where storage is this machine's disk (:attr:`~orchestrator.storage.Storage.writes_to_local_disk`), a
generation's images are not written before its end: their bytes commit with the job's success in their
``generation_images`` rows (``pending_data``), so the job's end waits for one WAL flush instead of a file's
fsync and then the statement (~1.2 ms less between ComfyUI's end and the client's ``job.succeeded`` on the
stand-in and real ComfyUI overhead benchmarks; writing the file unsynced before the statement still cost
0.3 ms). While the bytes are pending the image is served from them.

This sweep then stores each pending image durably (a plain :meth:`~orchestrator.storage.Storage.put`) and
clears its bytes. It runs every ``interval_s`` (``ATELIER_PENDING_IMAGES_SWEEP_S``; every second cost the
service more CPU per generation on the real ComfyUI benchmark than every 5 s, which batches the sweep's two
statements over more images) in every process, from its start: a process that died with images pending
leaves them to the next sweep, here or in another process (putting the same bytes twice is harmless). A
generation deleted while its images were being stored loses the file written for it after the deletion (the
row is checked after the write).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.generation.queries import clear_pending, pending_images
from orchestrator.storage import Storage

log = logging.getLogger(__name__)


class PendingImages:
    """The sweep over pending images (see the module's notes)."""

    def __init__(self, engine: AsyncEngine, storage: Storage, *, interval_s: float, batch: int = 64) -> None:
        self._engine = engine
        self._storage = storage
        self._interval_s = interval_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> int:
        """Store every pending image durably and clear its bytes; returns how many were settled."""
        settled = 0
        while found := await pending_images(self._engine, self._batch):
            for image in found:
                await self._storage.put(image.key, image.data, image.content_type)
            kept = await clear_pending(self._engine, [image.row_id for image in found])
            for image in found:
                if image.row_id not in kept:  # its generation was deleted meanwhile: so goes what was written for it
                    await self._storage.delete(image.key)
            settled += len(kept)
            if len(found) < self._batch:
                break
        return settled

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # storage or the database away: the bytes stay pending, the next sweep tries again
                log.exception("pending images could not be stored; trying again in %.1f s", self._interval_s)
            await asyncio.sleep(self._interval_s)  # a period, not synchronisation

    def start(self) -> None:
        """Sweep now, then every ``interval_s``."""
        self._task = asyncio.create_task(self._run(), name="pending-images")

    async def stop(self) -> None:
        """Stop sweeping (what is pending stays for the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
