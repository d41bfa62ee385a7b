"""Storage: the local directory and S3 (against moto's S3 server on loopback)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from orchestrator.settings import Settings
from orchestrator.storage import Storage, StorageKeyError, open_storage
from orchestrator.storage.base import INLINE_HASH_MAX_BYTES
from orchestrator.storage.local import LocalStorage
from tests.integration.conftest import S3_CREDENTIALS


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        settings = Settings(storage_url=f"file://{tmp_path / 'store'}")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        settings = Settings(storage_url="s3://atelier/run1", s3_endpoint_url=endpoint, **S3_CREDENTIALS)
    async with open_storage(settings) as opened:
        yield opened


async def test_put_get_exists_delete(store: Storage) -> None:
    stored = await store.put("images/a/0.png", b"\x89PNG-bytes", "image/png")
    assert stored.sha256 == hashlib.sha256(b"\x89PNG-bytes").hexdigest()
    assert stored.size == 10
    assert await store.get("images/a/0.png") == b"\x89PNG-bytes"
    assert await store.exists("images/a/0.png")
    await store.delete("images/a/0.png")
    assert not await store.exists("images/a/0.png")
    with pytest.raises(FileNotFoundError):
        await store.get("images/a/0.png")


async def test_a_large_object_is_described_and_stored_whole(store: Storage) -> None:
    data = bytes(range(256)) * (INLINE_HASH_MAX_BYTES // 256 + 3)  # hashed in a worker thread
    stored = await store.put("images/b/0.png", data, "image/png")
    assert (stored.sha256, stored.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert await store.get("images/b/0.png") == data


async def test_a_store_says_whether_it_writes_to_this_machines_disk(store: Storage) -> None:
    assert store.writes_to_local_disk is isinstance(store, LocalStorage)  # an S3 PUT is durable when it returns


async def test_put_file_and_delete_prefix(store: Storage, tmp_path: Path) -> None:
    big = tmp_path / "lora.safetensors"
    big.write_bytes(b"x" * (3 * 1024 * 1024 + 17))
    stored = await store.put_file("loras/s1/v1/lora.safetensors", big, "application/octet-stream")
    assert stored.size == big.stat().st_size
    assert stored.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    await store.put("loras/s1/v1/card.json", b"{}", "application/json")
    await store.put("loras/s2/v1/card.json", b"{}", "application/json")
    assert await store.delete_prefix("loras/s1") == 2
    assert not await store.exists("loras/s1/v1/lora.safetensors")
    assert await store.exists("loras/s2/v1/card.json")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "a//b", "", "a/./b", "sp ace"])
async def test_keys_cannot_escape(store: Storage, key: str) -> None:
    with pytest.raises(StorageKeyError):
        await store.put(key, b"x", "text/plain")


async def test_s3_presigned_urls_work_without_our_credentials(s3_endpoint: str) -> None:
    settings = Settings(storage_url="s3://atelier/presign", s3_endpoint_url=s3_endpoint, **S3_CREDENTIALS)
    async with open_storage(settings) as store, aiohttp.ClientSession() as http:
        put_url = await store.presigned_put("uploads/p.jpg", "image/jpeg")
        assert put_url is not None
        async with http.put(put_url, data=b"jpeg-bytes", headers={"Content-Type": "image/jpeg"}) as response:
            assert response.status == 200, await response.text()
        assert await store.get("uploads/p.jpg") == b"jpeg-bytes"
        get_url = await store.presigned_get("uploads/p.jpg", expires_s=60)
        assert get_url is not None
        async with http.get(get_url) as response:
            assert response.status == 200
            assert await response.read() == b"jpeg-bytes"


async def test_local_store_has_no_presigned_urls_but_exposes_the_file(tmp_path: Path) -> None:
    async with open_storage(Settings(storage_url=f"file://{tmp_path}")) as store:
        await store.put("x/y.txt", b"hi", "text/plain")
        assert await store.presigned_get("x/y.txt") is None
        path = store.local_path("x/y.txt")
        assert path is not None
        assert path.read_bytes() == b"hi"
