# SPDX-License-Identifier: Apache-2.0
"""A finished prompt's images: fetched with ``/view``, kept in storage as ``generations/<job id>/<n>.png``, and
recorded in ``generation_images`` (job, index, seed, full parameters, LoRAs used, sha256, size, width/height).
Writing them again (a retried job that collects an earlier run) replaces the same keys and rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.comfy import ComfyClient, OutputImage, RunSucceeded
from orchestrator.generation.payload import GenerationPayload, image_url, storage_prefix
from orchestrator.jobs.store import EVENTS_CHANNEL, ClaimedJob, JobLost

log = logging.getLogger(__name__)
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


def describe_output(job_id: uuid.UUID, index: int, data: bytes) -> StoredImage:
    """The storage key, digest, type and size of output image ``index``."""
    content_type, width, height = describe_image(data)
    key = f"{storage_prefix(job_id)}/{index}.{_EXTENSIONS.get(content_type, 'bin')}"
    return StoredImage(index, key, hashlib.sha256(data).hexdigest(), len(data), content_type, width, height)


async def fetch_outputs(
    client: ComfyClient, job_id: uuid.UUID, images: Sequence[OutputImage]
) -> list[tuple[StoredImage, bytes]]:
    """Fetch every image from the backend (``/view``); index = position in ``images``."""
    datas = await asyncio.gather(*(client.view(i.filename, i.subfolder, i.type) for i in images))
    return [(describe_output(job_id, n, data), data) for n, data in enumerate(datas)]


_RECORD_AND_ANNOUNCE = text(
    """
WITH job AS (
    UPDATE jobs SET heartbeat_at = now(), updated_at = now()
    WHERE id = :job_id AND status = 'running' AND attempts = :attempts
    RETURNING id, owner_id
), images AS (
    INSERT INTO generation_images
        (id, job_id, owner_id, index, storage_key, content_type, sha256, size_bytes, width, height, seed, params, loras)
    SELECT gen_random_uuid(), job.id, job.owner_id, r.index, r.storage_key, r.content_type, r.sha256, r.size_bytes,
           r.width, r.height, CAST(:seed AS numeric), :params || jsonb_build_object('batch_index', r.index), :loras
    FROM job, jsonb_to_recordset(:images) AS r(index int, storage_key text, content_type text, sha256 text,
                                                size_bytes bigint, width int, height int)
    ON CONFLICT (job_id, index) DO UPDATE SET
        storage_key = EXCLUDED.storage_key, content_type = EXCLUDED.content_type, sha256 = EXCLUDED.sha256,
        size_bytes = EXCLUDED.size_bytes, width = EXCLUDED.width, height = EXCLUDED.height, seed = EXCLUDED.seed,
        params = EXCLUDED.params, loras = EXCLUDED.loras
    RETURNING index
), event AS (
    INSERT INTO job_events (job_id, owner_id, type, data)
    SELECT job.id, job.owner_id, 'job.artifact', a.data
    FROM job, jsonb_array_elements(:artifacts) WITH ORDINALITY AS a(data, n)
    ORDER BY a.n
    RETURNING id
)
SELECT event.id, pg_notify(:channel, event.id::text) AS notified FROM event ORDER BY event.id
"""
).bindparams(*(bindparam(name, type_=JSONB) for name in ("params", "loras", "images", "artifacts")))


async def record_and_announce(
    engine: AsyncEngine, job: ClaimedJob, payload: GenerationPayload, stored: Sequence[StoredImage]
) -> list[dict[str, Any]]:
    """One statement: the ``generation_images`` rows (inserted or replaced) and a ``job.artifact`` event per
    image (with its NOTIFY), as the job store writes events: only while this attempt still runs the job
    (``attempts`` identifies the claim), else :class:`~orchestrator.jobs.store.JobLost`. Call it once the
    files are stored. ``engine`` must be in autocommit mode. Returns the images as the result lists them."""
    described = [image.as_result(job.id) for image in stored]
    if not stored:
        return described
    images = [
        {"index": i.index, "storage_key": i.key, "content_type": i.content_type, "sha256": i.sha256,
         "size_bytes": i.size, "width": i.width, "height": i.height}
        for i in stored
    ]  # fmt: skip
    params = {
        "job_id": job.id,
        "attempts": job.attempts,
        "seed": str(payload.seed) if payload.seed is not None else None,
        "params": {**payload.params, "template": payload.template},
        "loras": payload.loras,
        "images": images,
        "artifacts": [{"kind": "image", **image} for image in described],
        "channel": EVENTS_CHANNEL,
    }
    async with engine.connect() as conn:
        rows = (await conn.execute(_RECORD_AND_ANNOUNCE, params)).all()
    if not rows:
        raise JobLost(str(job.id))
    return described


def remove_local_copies(home: Path, images: Sequence[OutputImage], inputs: Sequence[str]) -> int:
    """Delete a local ComfyUI's copies of collected outputs and uploaded inputs (ours now live in storage);
    returns how many files went. Paths that would leave the ComfyUI folders are ignored."""
    removed = 0
    wanted = [(image.type, image.subfolder, image.filename) for image in images]
    wanted += [("input", *name.rpartition("/")[::2]) for name in inputs]
    for kind, subfolder, filename in wanted:
        base = (home / kind).resolve()
        path = (base / subfolder / filename).resolve()
        if kind not in ("output", "temp", "input") or not path.is_relative_to(base):
            continue
        try:
            if path.is_file():
                path.unlink()
                removed += 1
        except OSError as exc:  # best effort: the job's files are safe in storage already
            log.warning("could not remove ComfyUI's copy %s: %s", path, exc)
    return removed
