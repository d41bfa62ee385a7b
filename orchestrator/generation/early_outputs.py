# SPDX-License-Identifier: Apache-2.0
"""Storing a generation's images while ComfyUI finishes the prompt.

ComfyUI says an output node ran (its ``executed`` message, with the files it wrote) before it says the prompt
ended: 0.2-2 ms before on the real ComfyUI 0.33.0 here. A run that knows the graph's output nodes ends at the
last one's ``executed`` (:mod:`orchestrator.comfy.record`); one that does not waits for the prompt's result,
and the job's end then waits for the images to be read, screened and (remote storage) written too. When the
template has one output node, its images are read, screened and stored as soon as that message comes, and the
job's end takes what was stored (on a local disk the success statement carries small ones: they are written
after it). Anything else (several output nodes, images that are not the ones the result names) goes the usual
way after the run ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from orchestrator.comfy import Event, Executed, OutputImage
from orchestrator.generation.outputs import StoredImage

Stored = tuple[list[tuple[StoredImage, bytes]], list[int]]  # the images stored, and the indexes flagged
StoreImages = Callable[[list[OutputImage]], Awaitable[Stored]]
DropKeys = Callable[[list[str]], Awaitable[None]]


class EarlyOutputs:
    """Starts storing the images of the one output node once it ran; :meth:`take` hands them over."""

    def __init__(self, output_node_ids: Sequence[str] | None, store: StoreImages, drop: DropKeys) -> None:
        self._node = output_node_ids[0] if output_node_ids is not None and len(output_node_ids) == 1 else None
        self._store = store
        self._drop = drop
        self._images: list[OutputImage] | None = None
        self._task: asyncio.Future[Stored] | None = None

    def on_event(self, event: Event) -> None:
        """The prompt run's events: an ``Executed`` of the output node starts the storing."""
        if isinstance(event, Executed) and event.node == self._node and self._task is None and event.images:
            self._images = list(event.images)
            self._task = asyncio.ensure_future(self._store(self._images))

    async def take(self, selected: Sequence[OutputImage]) -> Stored | None:
        """What was stored for exactly these images (its errors raised); None when nothing was started for
        them (whatever was started is discarded)."""
        if self._task is None:
            return None
        if list(selected) != self._images:
            await self.discard()
            return None
        task, self._task = self._task, None
        return await task

    async def discard(self) -> None:
        """Stop what was started, and drop what it stored (a run that failed after its output node ran)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        [outcome] = await asyncio.gather(task, return_exceptions=True)
        if not isinstance(outcome, BaseException):
            await self._drop([image.key for image, _ in outcome[0]])
