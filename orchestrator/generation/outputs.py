# SPDX-License-Identifier: Apache-2.0
"""A finished prompt's images: fetched with ``/view``, kept in storage as ``generations/<job id>/<n>.png``, and
recorded in ``generation_images`` (job, index, seed, full parameters, LoRAs used, sha256, size, width/height).
Writing them again (a retried job that collects an earlier run) replaces the same keys and rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from PIL import Image, UnidentifiedImageError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.comfy import ComfyClient, OutputImage, RunSucceeded
from orchestrator.db.models import GenerationImage
from orchestrator.generation.payload import GenerationPayload, image_url, storage_prefix
from orchestrator.storage import Storage

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


@dataclass(frozen=True)
class StoredImage:
    """One output image in storage."""

    index: int
    key: str
    sha256: str
    size: int
    content_type: str
    width: int | None
    height: int | None

    def as_result(self, job_id: uuid.UUID) -> dict[str, object]:
        """The image as the job result and ``job.artifact`` describe it."""
        return {
            "index": self.index,
            "url": image_url(job_id, self.index),
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "size_bytes": self.size,
        }


def describe_image(data: bytes) -> tuple[str, int | None, int | None]:
    """Content type, width and height (from the PNG header without decoding; other formats through Pillow)."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "image/png", int(width), int(height)
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "", "application/octet-stream")
            return mime, image.size[0], image.size[1]
    except (UnidentifiedImageError, OSError):
        return "application/octet-stream", None, None


def select_images(result: RunSucceeded, output_node_ids: Sequence[str] | None) -> list[OutputImage]:
    """The images to keep: those of the template's output nodes in their order, or every output."""
    if output_node_ids is None:
        return list(result.images)
    order = {node: rank for rank, node in enumerate(output_node_ids)}
    kept = [image for image in result.images if image.node in order]
    return sorted(kept, key=lambda image: order[image.node])  # stable: ComfyUI's order within a node


async def _store_one(storage: Storage, job_id: uuid.UUID, index: int, data: bytes) -> StoredImage:
    content_type, width, height = describe_image(data)
    key = f"{storage_prefix(job_id)}/{index}.{_EXTENSIONS.get(content_type, 'bin')}"
    await storage.put(key, data, content_type)
    return StoredImage(index, key, hashlib.sha256(data).hexdigest(), len(data), content_type, width, height)


async def fetch_and_store(
    client: ComfyClient, storage: Storage, job_id: uuid.UUID, images: Sequence[OutputImage]
) -> list[StoredImage]:
    """Fetch every image from the backend and store it; index = position in ``images``."""
    datas = await asyncio.gather(*(client.view(i.filename, i.subfolder, i.type) for i in images))
    return list(await asyncio.gather(*(_store_one(storage, job_id, n, d) for n, d in enumerate(datas))))


async def record_images(
    engine: AsyncEngine,
    job_id: uuid.UUID,
    owner_id: uuid.UUID,
    payload: GenerationPayload,
    stored: Sequence[StoredImage],
) -> None:
    """Insert (or replace) the ``generation_images`` rows in one statement."""
    if not stored:
        return
    rows = [
        {
            "id": uuid.uuid4(),
            "job_id": job_id,
            "owner_id": owner_id,
            "index": image.index,
            "storage_key": image.key,
            "content_type": image.content_type,
            "sha256": image.sha256,
            "size_bytes": image.size,
            "width": image.width,
            "height": image.height,
            "seed": Decimal(payload.seed) if payload.seed is not None else None,
            "params": {**payload.params, "batch_index": image.index, "template": payload.template},
            "loras": payload.loras,
        }
        for image in stored
    ]
    stmt = insert(GenerationImage).values(rows)
    stmt = stmt.on_conflict_do_update(
        constraint="generation_images_job_index",
        set_={
            name: stmt.excluded[name]
            for name in ("storage_key", "content_type", "sha256", "size_bytes", "width", "height", "seed", "params")
        },
    )
    async with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        await conn.execute(stmt)
