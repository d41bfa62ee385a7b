# SPDX-License-Identifier: Apache-2.0
"""The ``generation`` job kind: run the accepted graph on a ComfyUI backend and keep its images.

1. On a retry, the previous backend's ``/history`` is asked for our prompt (the job id is the prompt id): a
   run that finished there is collected, one still queued or running there is followed, not redone.
2. Otherwise a backend is chosen (health, load, model affinity; not the previous one when another is ready),
   the init images are uploaded to it and the prompt runs with our job id as its prompt id.
3. Progress and previews become job events (:mod:`orchestrator.generation.comfy_relay`); the images go to storage
   and ``generation_images``, each announced by ``job.artifact`` {kind: image, url, sha256, index}. A small
   image does not wait for a local disk: its bytes commit with the job's success, in its row, and a sweep
   writes the file afterwards (:mod:`orchestrator.generation.pending_images`); larger ones, and every image
   on remote storage (S3), are stored before the success.
4. Before anything is stored, the images go past the content policy
   (:mod:`orchestrator.generation.output_screening`): an explicit one fails the job (``content_blocked``)
   or is stored blurred and flagged.

Failures: an error inside ComfyUI -> ``execution_error`` (node_id, node_type, exception_type; not retried);
a lost or unreachable backend, or none available -> retryable (the worker writes ``job.retrying`` and the next
attempt picks another backend); cancellation -> the prompt is interrupted or deleted on ComfyUI (by the
prompt run), then re-raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.comfy import (
    Backend,
    BackendHTTPError,
    BackendLost,
    BackendPool,
    BackendUnavailable,
    ComfyError,
    Event,
    NoBackendAvailable,
    OutputImage,
    PromptRejected,
    RunFailed,
    RunInterrupted,
    RunResult,
    RunSucceeded,
)
from orchestrator.comfy.history import result_from_history
from orchestrator.generation.comfy_relay import ComfyEventRelay
from orchestrator.generation.early_outputs import EarlyOutputs, Stored
from orchestrator.generation.followup import follow_existing
from orchestrator.generation.generation_services import GenerationServices
from orchestrator.generation.output_screening import preview_check, screen_outputs
from orchestrator.generation.outputs import fetch_outputs, image_rows, remove_local_copies, select_images
from orchestrator.generation.payload import KIND, GenerationPayload, storage_prefix
from orchestrator.generation.pending_images import commits_in_row
from orchestrator.jobs.kinds import JobContext, JobFailed, LaneState
from orchestrator.jobs.outcome import JobOutcome
from orchestrator.jobs.records import ClaimedJob
from orchestrator.policy import ContentPolicy
from orchestrator.storage import Storage

log = logging.getLogger(__name__)


async def _nothing() -> None:
    return None


async def _settle(relay: ComfyEventRelay, recording: asyncio.Task[None]) -> None:
    """Every event the run queued written, and its backend recorded (the first error raised)."""
    try:
        await relay.close()
    finally:
        await recording


def comfy_failure(exc: ComfyError) -> JobFailed:
    """A ComfyUI boundary error as the job's failure."""
    backend = exc.backend
    if isinstance(exc, PromptRejected):
        return JobFailed("prompt_rejected", str(exc), error_type=exc.error_type, backend=backend)
    if isinstance(exc, BackendLost):
        return JobFailed("backend_lost", exc.message, retryable=True, backend=backend)
    if isinstance(exc, BackendUnavailable):
        return JobFailed("backend_unavailable", exc.message, retryable=True, backend=backend)
    if isinstance(exc, NoBackendAvailable):
        return JobFailed("no_backend", exc.message, retryable=True)
    if isinstance(exc, BackendHTTPError):
        return JobFailed("backend_error", exc.message, retryable=exc.retryable, backend=backend, status=exc.status)
    return JobFailed("backend_error", str(exc), retryable=exc.retryable, backend=backend)


class GenerationKind:
    """Runs generation jobs on the services' backend pool; each ready backend is a lane of the scheduler that
    takes ``comfyui_backend_depth`` prompts at once (the one running and the next, queued in ComfyUI)."""

    name = KIND
    #: Before its acceptance is committed it only queues a prompt on ComfyUI, which a withdrawn run cancels.
    starts_before_commit = True

    def __init__(
        self, services: GenerationServices, storage: Storage, pool: BackendPool, policy: ContentPolicy
    ) -> None:
        self._services = services
        self._pool = pool
        self._storage = storage
        self._policy = policy
        self._depth = services.settings.comfyui_backend_depth

    def lanes(self) -> list[LaneState]:
        """Every backend, with room for ``comfyui_backend_depth`` prompts when it is ready."""
        return [LaneState(b.url, self._depth if b.ready and b.healthy else 0) for b in self._pool.backends]

    def on_lanes_changed(self, callback: Callable[[], None]) -> None:
        """Wake the worker when a backend's state changes."""
        self._pool.add_listener(callback)

    async def run(self, job: ClaimedJob, ctx: JobContext) -> JobOutcome:
        """Run (or collect) the job's prompt; the result names the images, seed, backend and ComfyUI's time."""
        payload = GenerationPayload.model_validate(job.payload)
        settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        settled.set_result(None)
        early: EarlyOutputs | None = None
        try:
            previous = await self._previous_run(job)
            if previous is not None:
                backend, result = previous
                ctx.release_lane()
            else:
                backend = self._lane_backend(job, payload) or await self._choose(payload, job.backend)
                early = EarlyOutputs(
                    payload.output_node_ids, functools.partial(self._store_images, job, payload, backend), self._drop
                )
                result, settled = await self._run_on(backend, job, ctx, payload, early)
            return await self._finish(job, payload, backend, result, settled, early)
        except BaseException as exc:
            if early is not None:  # a run that failed after its images were stored early: they go
                await early.discard()
            if isinstance(exc, ComfyError):
                raise comfy_failure(exc) from exc
            raise
        finally:
            await asyncio.gather(settled, return_exceptions=True)  # awaited already, unless collecting failed

    def _lane_backend(self, job: ClaimedJob, payload: GenerationPayload) -> Backend | None:
        """The backend the scheduler chose, when it can still take the prompt and offers its models."""
        if job.lane is None:
            return None
        try:
            backend = self._pool.backend(job.lane)
        except KeyError:
            return None
        usable = backend.ready and backend.healthy and backend.candidate().offers(payload.required_models)
        return backend if usable else None

    async def _previous_run(self, job: ClaimedJob) -> tuple[Backend, RunResult] | None:
        """The earlier attempt's run on its backend, when that backend still knows it."""
        if job.attempts <= 1 or not job.backend:
            return None
        try:
            backend = self._pool.backend(job.backend)
        except KeyError:
            return None
        if not backend.healthy:
            return None
        try:
            result = await follow_existing(backend, str(job.id), backend.run_options)
        except ComfyError as exc:
            log.info("job %s: previous backend %s cannot tell (%s); running again", job.id, backend.url, exc)
            return None
        if result is None or isinstance(result, RunInterrupted):
            return None  # unknown there, or stopped when the earlier attempt was (a shutdown): run it again
        log.info("job %s: collected the earlier run from %s", job.id, backend.url)
        return backend, result

    async def _choose(self, payload: GenerationPayload, previous: str | None) -> Backend:
        """The backend for this attempt: another than the previous one when possible, offering the models.

        When none can take it (all down, or restarting), it waits up to ``comfyui_ready_wait_s`` for one before
        giving up (a retryable failure), so that a single local ComfyUI's restart does not use up the attempts.
        Model lists are read again once, in case a file (a new LoRA) appeared since they were fetched.
        """
        key, required = payload.model_key_tuple(), payload.required_models or None
        if previous:
            with contextlib.suppress(NoBackendAvailable):
                return self._pool.choose(key, exclude=[previous], required_models=required)
        settings = self._services.settings
        deadline = time.monotonic() + settings.comfyui_ready_wait_s
        refreshed = False
        while True:
            try:
                return self._pool.choose(key, required_models=required)
            except NoBackendAvailable:
                if required and self._pool.ready and not refreshed:
                    refreshed = True
                    await self._refresh_model_lists(required)
                    continue
                if time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(settings.comfyui_poll_s)  # the pool's probes change its state; no event to await

    async def _refresh_model_lists(self, folders: Mapping[str, Any]) -> None:
        healthy = [b for b in self._pool.backends if b.healthy]
        await asyncio.gather(*(b.models(f, refresh=True) for b in healthy for f in folders), return_exceptions=True)

    async def _prepare_graph(self, backend: Backend, payload: GenerationPayload) -> dict[str, dict[str, Any]]:
        """The graph with the init images uploaded to ``backend`` (names patched if ComfyUI renamed one)."""
        graph = payload.graph
        for upload in payload.uploads:
            data = await self._storage.get(upload.key)
            name = await backend.client.upload_image(data, upload.filename, overwrite=True)
            for node_id, input_name in upload.targets:
                graph[node_id]["inputs"][input_name] = name
        return graph

    async def _run_on(
        self, backend: Backend, job: ClaimedJob, ctx: JobContext, payload: GenerationPayload, early: EarlyOutputs
    ) -> tuple[RunResult, asyncio.Future[None]]:
        """Upload, run and relay events; the backend is recorded (the claim did, when it chose it) so that a retry
        looks there first. The lane is given back as soon as ComfyUI is done with the prompt. Returns the result
        at once, with the writing of the events still queued (and of the backend) going on: the outputs are
        fetched meanwhile, and the job's end waits for it (its events go before job.succeeded)."""
        recorded = job.lane == backend.url
        recording = asyncio.create_task(_nothing() if recorded else ctx.set_backend(backend.url))
        relay = ComfyEventRelay(
            ctx,
            self._storage,
            payload.graph,
            preview_key=f"{storage_prefix(job.id)}/preview",
            preview_url=f"/v1/generations/{job.id}/preview",
            preview_interval_s=self._services.settings.preview_interval_s,
            progress_interval_s=self._services.settings.progress_interval_s,
            preview_allowed=preview_check(self._policy, payload),
        )

        async def on_event(event: Event) -> None:
            early.on_event(event)
            await relay.on_event(event)

        try:
            graph = await self._prepare_graph(backend, payload)
            result = await backend.run(
                graph, str(job.id), on_event, model_key=payload.model_key_tuple(), on_submitted=ctx.work_sent
            )
        except BaseException:
            ctx.release_lane()
            await relay.abort()
            await asyncio.gather(recording, return_exceptions=True)
            raise
        ctx.release_lane(result.execution_ms / 1000 if result.execution_ms is not None else None)
        return result, asyncio.ensure_future(_settle(relay, recording))

    async def _finish(
        self,
        job: ClaimedJob,
        payload: GenerationPayload,
        backend: Backend,
        result: RunResult,
        settled: asyncio.Future[None],
        early: EarlyOutputs | None,
    ) -> JobOutcome:
        if not isinstance(result, RunSucceeded):
            await settled
        if isinstance(result, RunFailed):
            message = f"{result.node_type or 'a node'} failed: {result.exception_type}: {result.exception_message}"
            details: dict[str, Any] = {
                "node_id": result.node_id,
                "node_type": result.node_type,
                "exception_type": result.exception_type,
                "backend": result.backend,
            }
            field = payload.node_fields.get(result.node_id or "")
            if field:
                details["field"] = field
            raise JobFailed("execution_error", message, **details)
        if isinstance(result, RunInterrupted):
            raise JobFailed("interrupted", "the prompt was interrupted on the ComfyUI backend", backend=result.backend)
        return await self._collect(job, payload, backend, result, settled, early)

    async def _with_every_output(
        self, backend: Backend, job: ClaimedJob, payload: GenerationPayload, result: RunSucceeded
    ) -> RunSucceeded:
        """The result with every output node the template names; one missing (a message the socket did not
        deliver, which ComfyUI never does on an unbroken socket) is looked up in the history entry."""
        expected = payload.output_node_ids
        if not expected or all(node in result.outputs for node in expected):
            return result
        entry = await backend.client.history(str(job.id))
        full = result_from_history(str(job.id), entry, backend=backend.url) if entry is not None else None
        if isinstance(full, RunSucceeded):
            log.warning("job %s: output nodes missing from the run's messages; taken from /history", job.id)
            return full
        return result

    async def _drop(self, keys: list[str]) -> None:
        for key in keys:
            await self._storage.delete(key)

    async def _store_images(
        self, job: ClaimedJob, payload: GenerationPayload, backend: Backend, images: list[OutputImage]
    ) -> Stored:
        """The images read, past the content policy and stored (but small ones on a local disk: the sweep writes
        them after the job's end, see :meth:`_collect`); the indexes flagged."""
        fetched = await fetch_outputs(backend.client, job.id, images, self._services.output_dir(backend.url))
        try:
            fetched, flagged = await screen_outputs(self._policy, job, payload, fetched)
        except JobFailed:
            await self._storage.delete(f"{storage_prefix(job.id)}/preview")
            raise
        puts = [
            self._storage.put(image.key, data, image.content_type)
            for image, data in fetched
            if not commits_in_row(self._storage, len(data))
        ]
        if not puts:
            return fetched, flagged
        try:
            await (puts[0] if len(puts) == 1 else asyncio.gather(*puts))  # one, the usual case: no task for it
        except OSError as exc:
            raise JobFailed("storage_error", f"images could not be stored: {exc}", retryable=True) from exc
        return fetched, flagged

    async def _collect(
        self,
        job: ClaimedJob,
        payload: GenerationPayload,
        backend: Backend,
        result: RunSucceeded,
        settled: asyncio.Future[None],
        early: EarlyOutputs | None,
    ) -> JobOutcome:
        """Images past the content policy, then to storage (begun when the output node ran, see
        :mod:`orchestrator.generation.early_outputs`); their rows and job.artifact events go with the job's
        success (one statement), after the run's other events (``settled``).

        On a local disk the statement commits a small image's bytes in its row (one WAL flush for both) and the
        file is written after it, by the sweep of :mod:`orchestrator.generation.pending_images`: waiting for a
        file's fsync first put ~1.2 ms on the job's end, and even writing it unsynced 0.3 ms (stand-in
        overhead benchmark, 64 x 64). Larger images, and remote storage, were written before the statement."""
        result = await self._with_every_output(backend, job, payload, result)
        selected = select_images(result, payload.output_node_ids)
        home = self._services.local_home(backend.url)
        try:
            stored = await early.take(selected) if early is not None else None
            fetched, flagged = (
                stored if stored is not None else await self._store_images(job, payload, backend, selected)
            )
        finally:
            if home is not None:  # a ComfyUI we run: its copies are ours to drop (they would pile up under var/)
                inputs = [upload.filename for upload in payload.uploads]
                await asyncio.to_thread(remove_local_copies, home, selected, inputs)
        stored_images = [image for image, _ in fetched]
        described = [
            {**image.as_result(job.id), **({"flagged": True} if image.index in flagged else {})}
            for image in stored_images
        ]
        result_data = {
            "images": described,
            "seed": payload.seed,
            "backend": backend.url,
            "comfy_execution_ms": result.execution_ms,
            "cached_nodes": list(result.cached_nodes),
            **({"flagged": flagged} if flagged else {}),
        }
        artifacts = [{"kind": "image", **image} for image in described]
        pending = [data if commits_in_row(self._storage, len(data)) else None for _, data in fetched]
        await settled
        return JobOutcome(result_data, artifacts=artifacts, rows=image_rows(payload, stored_images, pending))
