"""Every operation of the API through the SDK, against the running service with both stand-ins.

A recording client notes each operation it sends; the last test demands that every operation of the OpenAPI
document is implemented by both clients and was exercised here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from atelier_client import (
    AsyncClient,
    Client,
    Conflict,
    Event,
    NotFound,
    Unauthorized,
    ValidationFailed,
    verify_webhook,
)
from atelier_client._calls import Call, Id
from orchestrator.api.auth import issue_key
from tests.integration.client.conftest import OFFERED_LORA, ClientService
from tests.integration.training.conftest import BASE_MODEL

UI_PAGES = {"docs", "docs_asset"}  # the Swagger UI page and its files: for browsers, not the SDK
T = Any


@pytest.fixture(scope="module")
def used() -> set[str]:
    """The operations the tests of this module sent."""
    return set()


class Recording(AsyncClient):
    """The async client, noting which operations it sends."""

    def __init__(self, *args: Any, used: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.used = used

    async def send(self, call: Call[T]) -> T:
        self.used.add(call.operation)
        return await super().send(call)

    async def events(self, job_id: Id | None = None, *, after: int | None = None) -> AsyncIterator[Event]:
        self.used.add("job_events" if job_id is not None else "all_events")
        async for event in super().events(job_id, after=after):
            yield event


@pytest.fixture
async def atelier(client_service: ClientService, api_key: str, used: set[str]) -> AsyncIterator[Recording]:
    client = Recording(client_service.url, api_key=api_key, used=used)
    async with client:
        yield client


async def test_service_and_jobs(atelier: Recording) -> None:
    assert (await atelier.health()).status == "ok"
    assert (await atelier.readiness()).checks
    assert "atelier_http_requests_total" in await atelier.metrics()
    assert (await atelier.openapi())["openapi"].startswith("3.1")
    job = await atelier.create_noop_job(steps=3, step_ms=5)
    assert job.status == "queued"
    done = await atelier.wait(job.id)
    assert done.status == "succeeded"
    assert done.progress is not None
    assert done.progress["step"] == 3
    page = await atelier.list_jobs(kind="noop", limit=1)
    assert [j.id for j in page.items] == [job.id]
    assert (await atelier.get_job(job.id)).status == "succeeded"
    with pytest.raises(Conflict):
        await atelier.cancel_job(job.id)
    slow = await atelier.create_noop_job(steps=500, step_ms=20)
    assert (await atelier.cancel_job(slow.id)).id == slow.id
    assert (await atelier.wait(slow.id)).status == "cancelled"
    # the caller's whole stream from an id already seen: both jobs' events, in id order
    first = [e async for e in _take(atelier.events(after=0), 4)]
    assert [e.id for e in first] == sorted(e.id for e in first)
    assert {e.job_id for e in first} <= {job.id, slow.id}


async def _take(events: AsyncIterator[Event], count: int) -> AsyncIterator[Event]:
    async for event in events:
        yield event
        count -= 1
        if count == 0:
            return


async def test_subjects_photos_trainings_and_loras(atelier: Recording, photo_files: list[Path], tmp_path: Path) -> None:
    subject = await atelier.create_subject(
        "Ada", "person", "adaxyz", consent_confirmed=True, subject_is_adult=True, consent_statement="signed"
    )
    result = await atelier.upload_photos(subject.id, photo_files[:3])
    assert result.accepted == 3, result
    photos = await atelier.list_photos(subject.id)
    assert len(photos.items) == 3
    one = photos.items[0]
    assert (await atelier.get_photo(subject.id, one.id)).id == one.id
    await atelier.delete_photo(subject.id, one.id)
    assert (await atelier.get_subject(subject.id)).photo_count == 2
    assert subject.id in {s.id for s in (await atelier.list_subjects()).items}
    with pytest.raises(Conflict):  # presigned uploads need S3 storage; this service stores files locally
        await atelier.presign_photos(subject.id, [{"filename": "a.jpg", "content_type": "image/jpeg", "size_bytes": 9}])
    with pytest.raises(Conflict):
        await atelier.complete_photos(subject.id, [one.id])

    accepted = await atelier.create_training(
        subject_id=subject.id, base_model=BASE_MODEL, steps=4, resolution=64, save_every_n_steps=2,
        sample_prompts=["portrait"],
    )  # fmt: skip
    events: list[Event] = []
    done = await atelier.wait(accepted.id, on_event=events.append)
    assert done.status == "succeeded", done.error
    progress = [e.model() for e in events if e.type == "job.progress" and e.data.get("stage") == "train"]
    assert [p.step for p in progress if p.step] == [1, 2, 3, 4]
    assert all(p.total == 4 for p in progress)
    training = await atelier.get_training(accepted.id)
    assert training.lora is not None
    assert accepted.id in {t.id for t in (await atelier.list_trainings()).items}
    sample = next(e.data for e in events if e.type == "job.artifact" and e.data["kind"] == "sample")
    folder, name = sample["url"].rsplit("/", 2)[-2:]
    saved = await atelier.download_training_artifact(accepted.id, folder, name, tmp_path / "sample.png")
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == sample["sha256"]

    loras = await atelier.list_loras(subject_id=subject.id)
    [lora] = loras.items
    assert (await atelier.get_lora(lora.id)).versions[0].version == 1
    file = await atelier.download_lora(lora.id, 1, tmp_path / "ada.safetensors")
    assert hashlib.sha256(file.read_bytes()).hexdigest() == lora.versions[0].sha256

    stopped = await atelier.create_training(
        subject_id=subject.id, base_model=BASE_MODEL, steps=2000, resolution=64, save_every_n_steps=1
    )
    await _until_running(atelier, stopped.id)
    await atelier.cancel_training(stopped.id)
    assert (await atelier.wait(stopped.id)).status == "cancelled"
    resumed = await atelier.resume_training(stopped.id)
    await atelier.cancel_job(resumed.id)
    await atelier.wait(resumed.id)

    await atelier.delete_lora(lora.id)
    with pytest.raises(NotFound):
        await atelier.get_lora(lora.id)
    erasure = await atelier.delete_subject(subject.id)
    assert (await atelier.wait(erasure.id)).status == "succeeded"


async def _until_running(atelier: Recording, job_id: Id) -> None:
    async for event in atelier.events(job_id):
        if event.type == "job.progress" and event.data.get("stage") == "train" and event.data["step"] >= 1:
            return


async def test_generations_templates_backends_and_models(atelier: Recording, tmp_path: Path) -> None:
    assert (await atelier.list_backends()).items
    models = await atelier.list_models(refresh=True)
    assert BASE_MODEL in {m["name"] for m in models.checkpoints}
    accepted = await atelier.create_generation(
        template="txt2img", base_model=BASE_MODEL, prompt="a fox", width=64, height=64, steps=3, batch_size=2,
        loras=[{"lora": OFFERED_LORA, "strength_model": 0.8}],
    )  # fmt: skip
    done = await atelier.wait(accepted.id)
    assert done.status == "succeeded", done.error
    generation = await atelier.get_generation(accepted.id)
    assert generation.images is not None
    assert len(generation.images) == 2
    image = await atelier.download_image(accepted.id, 1, tmp_path / "fox-1.png")
    with Image.open(image) as png:
        assert png.size == (64, 64)
    assert hashlib.sha256(image.read_bytes()).hexdigest() == generation.images[1].sha256
    try:
        preview = await atelier.download_preview(accepted.id, tmp_path / "preview.png")
        assert preview.stat().st_size > 0
    except NotFound:
        pass  # a finished generation may have no preview left
    assert accepted.id in {g.id for g in (await atelier.list_generations(template="txt2img")).items}
    with pytest.raises(Conflict):
        await atelier.cancel_generation(accepted.id)
    await atelier.delete_generation(accepted.id)
    with pytest.raises(NotFound):
        await atelier.get_generation(accepted.id)

    templates = await atelier.list_templates()
    assert "txt2img" in {t.name for t in templates.items}
    detail = await atelier.get_template("txt2img")
    with pytest.raises(ValidationFailed) as refused:  # no parameter markers: nothing a request could set
        await atelier.register_template("plain", detail.api_graph)
    assert refused.value.errors
    with pytest.raises(NotFound):
        await atelier.delete_template("never-registered")


async def test_typed_errors_keep_the_field_errors(client_service: ClientService, atelier: Recording) -> None:
    with pytest.raises(ValidationFailed) as invalid:
        await atelier.create_generation(template="txt2img", base_model=BASE_MODEL, prompt="x", width=7)
    assert invalid.value.status == 422
    assert "width" in {e.field for e in invalid.value.errors}
    async with AsyncClient(client_service.url, api_key="atl_000000000000_wrong") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.list_jobs()


@pytest.fixture
async def hook_receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[bytes, dict[str, str]]]]]:
    received: asyncio.Queue[tuple[bytes, dict[str, str]]] = asyncio.Queue()

    async def handle(request: web.Request) -> web.Response:
        await received.put((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook", received  # type: ignore[union-attr]
    await runner.cleanup()


async def test_webhooks(atelier: Recording, hook_receiver: tuple[str, asyncio.Queue[Any]]) -> None:
    url, received = hook_receiver
    created = await atelier.create_webhook_secret()
    rotated = await atelier.rotate_webhook_secret(grace_s=60)
    assert (await atelier.get_webhook_secret()).current.secret == rotated.current.secret
    job = await atelier.create_noop_job(steps=1, webhook_url=url)
    async with asyncio.timeout(20):
        body, headers = await received.get()
    for secret in (created.current.secret, rotated.current.secret):
        assert verify_webhook(body, headers, secret).data.id == job.id
    [delivery] = (await atelier.list_webhook_deliveries(job_id=job.id)).items
    assert (await atelier.get_webhook_delivery(delivery.id)).message_id == delivery.message_id
    again = await atelier.redeliver_webhook(delivery.id)
    async with asyncio.timeout(20):
        body, headers = await received.get()
    assert headers["webhook-id"] == str(again.message_id)
    assert json.loads(body)["data"]["id"] == str(job.id)


async def test_the_audit_log_for_an_admin_key(client_service: ClientService, used: set[str]) -> None:
    owner = f"sdk-ops-{uuid.uuid4().hex[:6]}"
    admin = await issue_key(client_service.engine, owner, admin=True)
    async with Recording(client_service.url, api_key=admin.secret, used=used) as atelier:
        with pytest.raises(ValidationFailed) as refused:
            await atelier.create_subject("nude child", "character", "zqx")
        assert refused.value.type.endswith("/content-policy")
        page = await atelier.list_audit_events(owner_id=admin.owner_id)
        [row] = page.items
        assert row.rule == "minors_sexual"
        assert row.fields == ["name"]


async def test_every_operation_is_implemented_and_was_exercised(atelier: Recording, used: set[str]) -> None:
    document = await atelier.openapi()
    operations = {op["operationId"] for methods in document["paths"].values() for op in methods.values()}
    api = operations - UI_PAGES
    for client in (Client, AsyncClient):
        implemented = {getattr(getattr(client, name), "operation_id", None) for name in dir(client)}
        assert api - {"job_events", "all_events"} <= implemented, client
    assert api - used == set()
