"""S3-compatible object storage (AWS, MinIO, ...) through aioboto3."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aioboto3
from botocore.exceptions import ClientError

from orchestrator.settings import Settings
from orchestrator.storage.base import StoredObject, check_key, describe, file_digest


class S3Storage:
    """Objects in ``bucket`` under ``prefix``; one client for the life of the process."""

    writes_to_local_disk = False

    def __init__(self, client: Any, bucket: str, prefix: str, presign_client: Any = None) -> None:
        self._client = client
        self._presigner = presign_client or client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings, *, bucket: str, prefix: str) -> AsyncIterator[S3Storage]:
        """Open a client for the configured endpoint and credentials.

        Presigned URLs are signed for the host that will be asked (the signature covers it), so where
        clients reach the store by another address than this process does (``ATELIER_S3_PUBLIC_ENDPOINT_URL``,
        e.g. ``http://localhost:9000`` outside compose's network), a second client signs them for that address.
        """
        session = aioboto3.Session(
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if (secret := settings.s3_secret_access_key) else None,
            region_name=settings.s3_region,
        )
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(session.client("s3", endpoint_url=settings.s3_endpoint_url))
            presigner = None
            if settings.s3_public_endpoint_url:
                presigner = await stack.enter_async_context(
                    session.client("s3", endpoint_url=settings.s3_public_endpoint_url)
                )
            yield cls(client, bucket, prefix, presigner)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def local_path(self, key: str) -> Path | None:
        """Nothing is local."""
        return None

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        """PUT the object (S3 PUTs are atomic)."""
        stored = await describe(key, data)
        await self._client.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
            Metadata={"sha256": stored.sha256},
        )
        return stored

    async def put_file(self, key: str, path: Path, content_type: str) -> StoredObject:
        """Upload a file (multipart for large ones, handled by the transfer manager)."""
        sha256, size = await asyncio.to_thread(file_digest, path)
        extra = {"ContentType": content_type, "Metadata": {"sha256": sha256}}
        await self._client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=extra)
        return StoredObject(key=key, size=size, sha256=sha256)

    async def get(self, key: str) -> bytes:
        """GET the object; FileNotFoundError when absent."""
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from exc
            raise
        async with response["Body"] as body:
            return await body.read()

    async def delete(self, key: str) -> None:
        """DELETE the object."""
        await self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix/`` in pages of up to 1000."""
        paginator = self._client.get_paginator("list_objects_v2")
        count = 0
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/"):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                await self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
                count += len(objects)
        return count

    async def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            await self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def presigned_get(self, key: str, expires_s: int = 3600) -> str | None:
        """A time-limited GET URL."""
        return await self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )

    async def presigned_put(self, key: str, content_type: str, expires_s: int = 3600) -> str | None:
        """A time-limited PUT URL; the uploader must send the same Content-Type."""
        return await self._presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._key(key), "ContentType": content_type},
            ExpiresIn=expires_s,
        )
