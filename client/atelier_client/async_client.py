"""The asyncio client: the same operations as :class:`atelier_client.Client`, awaited."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx
from httpx_sse import aconnect_sse

from atelier_client import ops_generation as gen
from atelier_client import ops_jobs as jobs
from atelier_client import ops_training as train
from atelier_client._calls import Call, Id, saved
from atelier_client.client import STREAM_TIMEOUT, events_path, headers_for
from atelier_client.config import resolve
from atelier_client.errors import raise_for_problem
from atelier_client.events import RETRYABLE, Event, Resumption
from atelier_client.models import JobOut

P = ParamSpec("P")
T = TypeVar("T")


def _op(build: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncClient, P], Awaitable[T]]:
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.send(build(*args, **kwargs))

    method.__name__ = build.__name__
    method.__doc__ = build.__doc__
    method.operation_id = build.operation_id  # type: ignore[attr-defined]
    return method


class AsyncClient:
    """An asyncio client. ``AsyncClient()`` reads ATELIER_URL / ATELIER_API_KEY / the config file.

    >>> async with AsyncClient() as atelier:
    ...     job = await atelier.create_noop_job(steps=3)
    ...     async for event in atelier.events(job.id):
    ...         print(event.type, event.data)
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        stream_retries: int = 10,
    ) -> None:
        connection = resolve(url, api_key)
        self.url = connection.url
        self.stream_retries = stream_retries
        self._http = httpx.AsyncClient(
            base_url=connection.url, headers=headers_for(connection.api_key), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """Execute one operation (every method goes through here)."""
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json, files=call.files)
        if call.download_to is None:
            response = await self._http.send(request, follow_redirects=True)
            raise_for_problem(response)
            return call.parse(response)
        response = await self._http.send(request, stream=True, follow_redirects=True)
        try:
            if response.is_error:
                await response.aread()
                raise_for_problem(response)
            await _save(response.aiter_bytes(), call.download_to)
        finally:
            await response.aclose()
        return call.parse(response)

    async def events(self, job_id: Id | None = None, *, after: int | None = None) -> AsyncIterator[Event]:
        """Follow a job's events (or all of the caller's), resuming with ``Last-Event-ID`` after drops."""
        state = Resumption(after=after, max_retries=self.stream_retries)
        while True:
            try:
                async with aconnect_sse(
                    self._http, "GET", events_path(job_id), headers=state.headers(), timeout=STREAM_TIMEOUT
                ) as source:
                    if source.response.is_error:
                        await source.response.aread()
                    if not state.check(source.response):
                        return
                    async for sse in source.aiter_sse():
                        event = state.accept(sse)
                        if event is not None:
                            yield event
                            if job_id is not None and event.is_terminal:
                                return
                reason = "the service ended the stream"
            except RETRYABLE as exc:
                reason = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(state.next_delay(reason))

    async def wait(self, job_id: Id, *, on_event: Callable[[Event], None] | None = None) -> JobOut:
        """Follow the job until it ends (calling ``on_event`` for each event); the finished job."""
        async for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
        return await self.get_job(job_id)

    async def download_url(self, url: str, dest: Path | str) -> Path:
        """Save what a URL the API handed out (an event's ``url``, an image's ``url``) points at to ``dest``."""
        return await self.send(Call("download_url", "GET", url, saved(Path(dest)), download_to=Path(dest)))

    health = _op(jobs.health)
    readiness = _op(jobs.readiness)
    metrics = _op(jobs.metrics)
    openapi = _op(jobs.openapi)
    create_noop_job = _op(jobs.create_noop_job)
    list_jobs = _op(jobs.list_jobs)
    get_job = _op(jobs.get_job)
    cancel_job = _op(jobs.cancel_job)
    get_webhook_secret = _op(jobs.get_webhook_secret)
    create_webhook_secret = _op(jobs.create_webhook_secret)
    rotate_webhook_secret = _op(jobs.rotate_webhook_secret)
    list_webhook_deliveries = _op(jobs.list_webhook_deliveries)
    get_webhook_delivery = _op(jobs.get_webhook_delivery)
    redeliver_webhook = _op(jobs.redeliver_webhook)
    list_audit_events = _op(jobs.list_audit_events)
    create_subject = _op(train.create_subject)
    list_subjects = _op(train.list_subjects)
    get_subject = _op(train.get_subject)
    delete_subject = _op(train.delete_subject)
    upload_photos = _op(train.upload_photos)
    presign_photos = _op(train.presign_photos)
    complete_photos = _op(train.complete_photos)
    list_photos = _op(train.list_photos)
    get_photo = _op(train.get_photo)
    delete_photo = _op(train.delete_photo)
    create_training = _op(train.create_training)
    list_trainings = _op(train.list_trainings)
    get_training = _op(train.get_training)
    cancel_training = _op(train.cancel_training)
    resume_training = _op(train.resume_training)
    download_training_artifact = _op(train.download_training_artifact)
    list_loras = _op(train.list_loras)
    get_lora = _op(train.get_lora)
    delete_lora = _op(train.delete_lora)
    download_lora = _op(train.download_lora)
    create_generation = _op(gen.create_generation)
    list_generations = _op(gen.list_generations)
    get_generation = _op(gen.get_generation)
    cancel_generation = _op(gen.cancel_generation)
    delete_generation = _op(gen.delete_generation)
    download_image = _op(gen.download_image)
    download_preview = _op(gen.download_preview)
    list_templates = _op(gen.list_templates)
    get_template = _op(gen.get_template)
    register_template = _op(gen.register_template)
    delete_template = _op(gen.delete_template)
    list_backends = _op(gen.list_backends)
    list_models = _op(gen.list_models)


async def _save(chunks: AsyncIterator[bytes], dest: Path) -> None:
    """Write a download next to ``dest`` and move it into place only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                out.write(chunk)
        os.replace(partial, dest)
    except BaseException:
        os.unlink(partial)
        raise
