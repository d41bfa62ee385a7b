# SPDX-License-Identifier: Apache-2.0
"""A finished prompt's images: fetched with ``/view``, kept in storage as ``generations/<job id>/<n>.png``, and
recorded in ``generation_images`` (job, index, seed, full parameters, LoRAs used, sha256, size, width/height)
by the same statement that ends the job. Writing them again (a retried job that collects an earlier run)
replaces the same keys and rows.
"""

from __future__ import annotations

import asyncio
import io
import logging
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from orchestrator.comfy import ComfyClient, OutputImage, RunSucceeded
from orchestrator.generation.payload import GenerationPayload, image_url, storage_prefix
from orchestrator.jobs.outcome import RowsWrite
from orchestrator.storage import sha256_hex

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


async def describe_output(job_id: uuid.UUID, index: int, data: bytes) -> StoredImage:
    """The storage key, digest, type and size of output image ``index``."""
    content_type, width, height = describe_image(data)
    key = f"{storage_prefix(job_id)}/{index}.{_EXTENSIONS.get(content_type, 'bin')}"
    return StoredImage(index, key, await sha256_hex(data), len(data), content_type, width, height)


async def fetch_outputs(
    client: ComfyClient, job_id: uuid.UUID, images: Sequence[OutputImage], output_dir: Path | None = None
) -> list[tuple[StoredImage, bytes]]:
    """Every image from the backend; index = position in ``images``. With the backend's ``output_dir`` (it runs
    on this machine) its outputs are read from there -- ComfyUI wrote the file before it said ``executed`` --
    and only what is not found there is fetched over ``/view`` (one round trip through ComfyUI's server less)."""

    async def one(image: OutputImage) -> bytes:
        if output_dir is not None and image.type == "output":
            data = await read_output(output_dir, image)
            if data is not None:
                return data
        return await client.view(image.filename, image.subfolder, image.type)

    # one image (the usual case) is read right here: gather would make it a task, run a loop turn later
    datas = [await one(images[0])] if len(images) == 1 else await asyncio.gather(*(one(image) for image in images))
    return [(await describe_output(job_id, n, data), data) for n, data in enumerate(datas)]


#: Output files up to this size are read on the event loop, larger ones in a worker thread. A file ComfyUI has
#: just written is in the page cache: reading 6 KB takes ~20 us, while handing the read to a thread and back
#: took 0.5 ms on the critical path of a job (stand-in overhead benchmark, 2-core machine).
INLINE_READ_MAX_BYTES = 1 << 20


async def read_output(output_dir: Path, image: OutputImage) -> bytes | None:
    """The output file's bytes from ComfyUI's output folder; None when it is not there (or would be outside)."""
    try:
        path = _output_file(output_dir, image)
        if path is None:
            return None
        data = _read_if_small(path)
        return data if data is not None else await asyncio.to_thread(path.read_bytes)
    except OSError:
        return None


def _output_file(output_dir: Path, image: OutputImage) -> Path | None:
    base = output_dir.resolve()
    path = (base / image.subfolder / image.filename).resolve()
    return path if path.is_relative_to(base) else None


def _read_if_small(path: Path) -> bytes | None:
    """The file's bytes when it is at most ``INLINE_READ_MAX_BYTES`` long (read right here), else None."""
    return path.read_bytes() if path.stat().st_size <= INLINE_READ_MAX_BYTES else None


# Runs inside the job store's success statement (see orchestrator.jobs.outcome.RowsWrite): ``job`` is the
# finishing job, empty when it is no longer ours, so no row is written then. A retry that collects an earlier
# run replaces the same rows. ``gen_pending`` holds, per image in order, its bytes while storage may still
# lose them (NULL once it holds them durably).
IMAGE_ROWS_SQL = """
INSERT INTO generation_images
    (id, job_id, owner_id, index, storage_key, content_type, sha256, size_bytes, width, height, seed, params, loras,
     pending_data)
SELECT gen_random_uuid(), job.id, job.owner_id, r.index, r.storage_key, r.content_type, r.sha256, r.size_bytes,
       r.width, r.height, CAST(:gen_seed AS numeric), :gen_params || jsonb_build_object('batch_index', r.index),
       :gen_loras, (:gen_pending)[r.n]
FROM job, ROWS FROM (jsonb_to_recordset(:gen_images) AS (index int, storage_key text, content_type text,
                     sha256 text, size_bytes bigint, width int, height int)) WITH ORDINALITY
     AS r(index, storage_key, content_type, sha256, size_bytes, width, height, n)
ON CONFLICT (job_id, index) DO UPDATE SET
    storage_key = EXCLUDED.storage_key, content_type = EXCLUDED.content_type, sha256 = EXCLUDED.sha256,
    size_bytes = EXCLUDED.size_bytes, width = EXCLUDED.width, height = EXCLUDED.height, seed = EXCLUDED.seed,
    params = EXCLUDED.params, loras = EXCLUDED.loras, pending_data = EXCLUDED.pending_data
RETURNING index
"""


def image_rows(
    payload: GenerationPayload, stored: Sequence[StoredImage], pending: Sequence[bytes | None] | None = None
) -> RowsWrite | None:
    """The ``generation_images`` rows of the stored images, to be written with the job's success; ``pending``:
    per image, its bytes when storage does not hold them durably yet (None for each when it does)."""
    if not stored:
        return None
    images = [
        {"index": i.index, "storage_key": i.key, "content_type": i.content_type, "sha256": i.sha256,
         "size_bytes": i.size, "width": i.width, "height": i.height}
        for i in stored
    ]  # fmt: skip
    params = {
        "gen_seed": str(payload.seed) if payload.seed is not None else None,
        "gen_params": {**payload.params, "template": payload.template},
        "gen_loras": payload.loras,
        "gen_images": images,
        "gen_pending": list(pending) if pending is not None else [None] * len(stored),
    }
    casts = {"gen_params": "jsonb", "gen_loras": "jsonb", "gen_images": "jsonb", "gen_pending": "bytea[]"}
    return RowsWrite(IMAGE_ROWS_SQL, params, casts=casts)


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
