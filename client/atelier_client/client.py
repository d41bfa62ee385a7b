"""The synchronous client: every operation of the API, event streams that resume, waiting for jobs."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

import httpx
from httpx_sse import connect_sse

from atelier_client import ops_generation as gen
from atelier_client import ops_jobs as jobs
from atelier_client import ops_training as train
from atelier_client._calls import Call, Id, path, saved
from atelier_client.config import resolve
from atelier_client.errors import raise_for_problem
from atelier_client.events import RETRYABLE, Event, Resumption
from atelier_client.models import JobOut

P = ParamSpec("P")
T = TypeVar("T")
USER_AGENT = "atelier-client/0.1"
STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)  # the service pings every 15 s: 60 s of silence is a lost link


def headers_for(api_key: str | None) -> dict[str, str]:
    """The headers every request carries."""
    return {"User-Agent": USER_AGENT} | ({"Authorization": f"Bearer {api_key}"} if api_key else {})


def events_path(job_id: Id | None) -> str:
    """One job's event stream, or all of the caller's."""
    return path("/v1/jobs/{id}/events", id=job_id) if job_id is not None else "/v1/events"


def _op(build: Callable[P, Call[T]]) -> Callable[Concatenate[Client, P], T]:
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.send(build(*args, **kwargs))

    method.__name__ = build.__name__
    method.__doc__ = build.__doc__
    method.operation_id = build.operation_id  # type: ignore[attr-defined]
    return method


class Client:
    """A synchronous client. ``Client()`` reads ATELIER_URL / ATELIER_API_KEY / the config file.

    >>> with Client("http://127.0.0.1:8000", api_key="atl_...") as atelier:
    ...     job = atelier.create_generation(template="txt2img", base_model="sd15", prompt="a fox")
    ...     done = atelier.wait(job.id)
    ...     atelier.download_image(job.id, 0, "fox.png")
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        stream_retries: int = 10,
    ) -> None:
        connection = resolve(url, api_key)
        self.url = connection.url
        self.stream_retries = stream_retries
        self._http = httpx.Client(
            base_url=connection.url, headers=headers_for(connection.api_key), timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Execute one operation (every method goes through here)."""
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json, files=call.files)
        if call.download_to is None:
            response = self._http.send(request, follow_redirects=True)
            raise_for_problem(response)
            return call.parse(response)
        response = self._http.send(request, stream=True, follow_redirects=True)
        try:
            if response.is_error:
                response.read()
                raise_for_problem(response)
            _save(response.iter_bytes(), call.download_to)
        finally:
            response.close()
        return call.parse(response)

    def events(self, job_id: Id | None = None, *, after: int | None = None) -> Iterator[Event]:
        """Follow a job's events (or, without ``job_id``, all of the caller's), resuming after dropped
        connections with ``Last-Event-ID``: no event is missed or repeated. A job's stream ends after its
        terminal event; ``after`` starts past an event id already seen."""
        state = Resumption(after=after, max_retries=self.stream_retries)
        while True:
            try:
                with connect_sse(
                    self._http, "GET", events_path(job_id), headers=state.headers(), timeout=STREAM_TIMEOUT
                ) as source:
                    if source.response.is_error:
                        source.response.read()
                    if not state.check(source.response):
                        return
                    for sse in source.iter_sse():
                        event = state.accept(sse)
                        if event is not None:
                            yield event
                            if job_id is not None and event.is_terminal:
                                return
                reason = "the service ended the stream"
            except RETRYABLE as exc:
                reason = f"{type(exc).__name__}: {exc}"
            time.sleep(state.next_delay(reason))

    def wait(self, job_id: Id, *, on_event: Callable[[Event], None] | None = None) -> JobOut:
        """Follow the job until it ends (calling ``on_event`` for each event); the finished job."""
        for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
        return self.get_job(job_id)

    def download_url(self, url: str, dest: Path | str) -> Path:
        """Save what a URL the API handed out (an event's ``url``, an image's ``url``) points at to ``dest``."""
        return self.send(Call("download_url", "GET", url, saved(Path(dest)), download_to=Path(dest)))

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


def _save(chunks: Iterator[bytes], dest: Path) -> None:
    """Write a download next to ``dest`` and move it into place only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(partial, dest)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
