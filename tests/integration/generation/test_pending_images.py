"""A finished generation's small images are not written to the local disk before its end: their bytes commit
with its success and wait in their rows until the sweep has stored them durably; meanwhile the image is served
from there. Larger images are stored before the end, their rows without bytes."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
from sqlalchemy import text

from orchestrator.app_keys import STORAGE
from orchestrator.generation.pending_images import PENDING_MAX_BYTES, PendingImages
from orchestrator.storage import StoredObject
from orchestrator.storage.local import LocalStorage
from tests.integration.conftest import Caller
from tests.integration.generation.conftest import GenerationService, submit, txt2img
from tests.support.db import wait_for_terminal


async def _pending(svc: GenerationService, job_id: str) -> bytes | None:
    async with svc.engine.connect() as conn:
        return await conn.scalar(
            text("SELECT pending_data FROM generation_images WHERE job_id = :j AND index = 0"), {"j": uuid.UUID(job_id)}
        )


async def _image(http: aiohttp.ClientSession, svc: GenerationService, me: Caller, job_id: str) -> bytes:
    async with http.get(f"{svc.url}/v1/generations/{job_id}/images/0", headers=me.headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "image/png"
        return await response.read()


async def _finished(
    http: aiohttp.ClientSession, svc: GenerationService, me: Caller, seed: int, size: int = 64
) -> tuple[str, Path]:
    """A generation run to its end, and where storage keeps its image."""
    job_id = await submit(http, svc, me, txt2img(seed=seed, width=size, height=size))
    await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    return job_id, svc.app_storage_path(f"generations/{job_id}/0.png")


async def test_pending_bytes_serve_the_image_until_the_sweep_stores_it_durably(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id, file = await _finished(http, svc, me, seed=61)
    assert not file.exists()  # not written before the job's end
    written = await _pending(svc, job_id)
    assert written is not None
    assert written.startswith(b"\x89PNG")
    assert await _image(http, svc, me, job_id) == written  # served from the pending bytes

    assert await PendingImages(svc.engine, svc.app[STORAGE], interval_s=1).sweep() >= 1
    assert file.read_bytes() == written  # stored again, durably
    assert await _pending(svc, job_id) is None
    assert await _image(http, svc, me, job_id) == written  # now from storage


@contextlib.contextmanager
def _textured_images(svc: GenerationService) -> Iterator[None]:
    """The stand-ins save noise about as large as a generated image (a PNG of one colour is tiny at any size)."""
    for backend in svc.backends:
        backend.executor.textured_images = True
    try:
        yield
    finally:
        for backend in svc.backends:
            backend.executor.textured_images = False


async def test_a_larger_image_is_stored_before_the_job_ends_and_has_no_pending_bytes(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    with _textured_images(svc):
        job_id, file = await _finished(http, svc, me, seed=63, size=256)
    stored = file.read_bytes()  # there at the job's end, before any sweep
    assert len(stored) > PENDING_MAX_BYTES
    assert await _pending(svc, job_id) is None
    async with http.get(f"{svc.url}/v1/generations/{job_id}", headers=me.headers) as response:
        described = (await response.json())["images"][0]
    assert described["sha256"] == hashlib.sha256(stored).hexdigest()
    assert (described["width"], described["size_bytes"]) == (256, len(stored))
    assert await _image(http, svc, me, job_id) == stored


class _HookedStorage(LocalStorage):
    """The app's local store, running ``before_put`` (once) before its next durable put."""

    def __init__(self, root: Path, before_put: Callable[[], Awaitable[None]]) -> None:
        super().__init__(root)
        self._before_put: Callable[[], Awaitable[None]] | None = before_put

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        if self._before_put is not None:
            before, self._before_put = self._before_put, None
            await before()
        return await super().put(key, data, content_type)


async def test_a_generation_deleted_while_the_sweep_stores_its_image_keeps_no_file(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    job_id, file = await _finished(http, svc, me, seed=62)
    assert await _pending(svc, job_id) is not None

    async def delete_the_generation() -> None:  # after the sweep read its row, before it writes the file
        async with http.delete(f"{svc.url}/v1/generations/{job_id}", headers=me.headers) as response:
            assert response.status == 204
        assert not file.exists()

    root = svc.app_storage_path("")
    sweep = PendingImages(svc.engine, _HookedStorage(root, delete_the_generation), interval_s=1)
    await sweep.sweep()
    assert not file.exists()  # written by the sweep after the deletion, then removed with its row gone
