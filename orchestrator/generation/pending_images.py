# SPDX-License-Identifier: Apache-2.0
"""Writing small generated images to a local disk after the job's end instead of before it.

Where storage is this machine's disk (:attr:`~orchestrator.storage.Storage.writes_to_local_disk`), an image of
at most :data:`PENDING_MAX_BYTES` is not written before its job's end: its bytes commit with the job's success
in its ``generation_images`` row (``pending_data``), so the job's end waits for one WAL flush instead of a
file's fsync and then the statement (~1.2 ms less between ComfyUI's end and the client's ``job.succeeded`` on
the stand-in and real ComfyUI overhead benchmarks at 64 x 64; writing the file unsynced before the statement
still cost 0.3 ms). While the bytes are pending the image is served from them. Larger images are stored
durably before the success: their bytes in the WAL cost more than the file's fsync (see the constant).

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

#: The largest image whose bytes commit with its job's success. Committing an image's bytes and writing its
#: file with an fsync before a small commit cost about the same at ~32 KB; above, the bytes in the statement
#: cost more and more (PNGs of noise, each after 30 ms of quiet, median ms: 29 KB 2.4 against 4.2 with a file;
#: 65 KB 3.9 against 3.4; 115 KB 5.4 against 2.8; 460 KB 16.2 against 3.6 -- Postgres compresses and logs
#: the bytes). On the stand-in overhead benchmark, all in the statement, the job's end took 13 ms at 512 x 512
#: and 48 ms at 1024 x 1024.
PENDING_MAX_BYTES = 32 * 1024


def commits_in_row(storage: Storage, size: int) -> bool:
    """Whether an image of ``size`` bytes commits with its job's success, in its row, to be stored by the sweep
    (else it is stored durably before the success)."""
    return storage.writes_to_local_disk and size <= PENDING_MAX_BYTES


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
