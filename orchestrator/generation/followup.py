# SPDX-License-Identifier: Apache-2.0
"""Finding a retried job's earlier prompt on the backend that ran it (the job id is the prompt id).

A worker that died, or lost its heartbeat, may leave a prompt that ComfyUI finished or is still running.
Submitting it again would run it twice; instead its history entry is collected, waiting while it is still
queued or running there (by ``/history`` polls: this is a rare path, and the prompt's socket messages went
to the worker that submitted it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from orchestrator.comfy import Backend, ComfyError, RunOptions, RunResult
from orchestrator.comfy.history import result_from_history

log = logging.getLogger(__name__)


async def _cancel(backend: Backend, prompt_id: str) -> None:
    with contextlib.suppress(ComfyError, TimeoutError):
        async with asyncio.timeout(5.0):
            await backend.client.delete_queued([prompt_id])
            await backend.client.interrupt(prompt_id)


async def follow_existing(backend: Backend, prompt_id: str, options: RunOptions) -> RunResult | None:
    """The prompt's result on ``backend``: at once when it has ended, after waiting when it is still queued or
    running there; None when the backend does not know it. Raises ComfyError when the backend cannot tell."""
    client = backend.client
    try:
        while True:
            entry = await client.history(prompt_id)
            if entry is not None:
                return result_from_history(prompt_id, entry, backend=client.base_url)
            queue = await client.queue()
            if prompt_id not in queue:
                entry = await client.history(prompt_id)  # it may have ended between the two calls
                return result_from_history(prompt_id, entry, backend=client.base_url) if entry else None
            log.info(
                "prompt %s is still %s on %s; waiting for it",
                prompt_id,
                "queued" if prompt_id in queue.pending else "running",
                client.base_url,
            )
            await asyncio.sleep(options.poll_s)  # polling ComfyUI, which offers no other signal to this worker
    except asyncio.CancelledError:
        await asyncio.shield(_cancel(backend, prompt_id))
        raise
