"""The node pack's remote LoRA loader logic against a real LoRA Atelier service (no ComfyUI needed).

A LoRA is trained through the API with the stand-in trainer; the pack's :class:`RemoteLoras` then lists it,
downloads it once (sha256 checked), finds it in its cache with no server at all, and says clearly why it cannot
load one when the key is refused or the file's hash is not the published one. The same code runs inside a real
ComfyUI in tests/engines/test_editor_round_trip.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from custom_nodes.atelier_nodes.atelier_connection import Connection
from custom_nodes.atelier_nodes.remote_client import ChecksumMismatch, KeyRefused
from custom_nodes.atelier_nodes.remote_loras import INDEX_FILE, RemoteLoras, server_folder_name
from tests.integration.conftest import Caller, new_caller
from tests.integration.training.conftest import TrainingService, create_subject, face_photos, submit, upload
from tests.support.service import free_port
from tests.support.sse import collect


@dataclass(frozen=True)
class Trained:
    """A LoRA trained for these tests, and its owner."""

    caller: Caller
    key: str
    lora: dict[str, Any]
    """The job.artifact event of kind lora."""
    file: bytes


@pytest.fixture(scope="module")
async def trained(training_service: TrainingService) -> Trained:
    svc = training_service
    caller = await new_caller(svc.engine, f"remote-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession() as http:
        subject = await create_subject(http, svc, caller, name="Remote Ada", trigger_word="ohwx_ada")
        await upload(http, svc, caller, subject["id"], [(f"p{i}.jpg", d) for i, d in enumerate(face_photos()[:2])])
        status, accepted = await submit(http, svc, caller, subject["id"])
        assert status == 202, accepted
        events = await collect(http, svc.url + accepted["events_url"], headers=caller.headers)
        assert events[-1].event == "job.succeeded", events[-1]
        [lora] = [e.data for e in events if e.event == "job.artifact" and e.data["kind"] == "lora"]
        async with http.get(svc.url + lora["url"], headers=caller.headers) as response:
            file = await response.read()
    return Trained(caller, caller.headers["Authorization"].removeprefix("Bearer "), lora, file)


def remote(root: Path, url: str, key: str | None) -> RemoteLoras:
    """The pack's remote view with a fixed connection and cache folder (as ComfyUI would give it)."""
    connection = Connection(url, key, "settings", "settings" if key else None)
    return RemoteLoras(lambda: root, lambda: connection, timeout_s=5.0)


def files_under(root: Path) -> list[Path]:
    """Every file below ``root``."""
    return [path for path in root.rglob("*") if path.is_file()]


ENTRY = "Remote Ada/Remote-Ada/v1 (trigger: ohwx_ada)"


async def test_lists_downloads_once_and_checks_the_file(
    training_service: TrainingService, trained: Trained, tmp_path: Path
) -> None:
    loras = remote(tmp_path, training_service.url, trained.key)
    assert await asyncio.to_thread(loras.entries) == [ENTRY]
    assert await asyncio.to_thread(loras.problem, ENTRY) is True
    path, trigger = await asyncio.to_thread(loras.file_for, ENTRY)
    assert trigger == "ohwx_ada"
    assert path == tmp_path / server_folder_name(training_service.url) / trained.lora["comfy_name"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == trained.lora["sha256"]
    index = json.loads((path.parents[2] / INDEX_FILE).read_text())["files"]
    assert index["Remote Ada/Remote-Ada/v1"]["sha256"] == trained.lora["sha256"]
    before = path.stat().st_mtime_ns
    assert await asyncio.to_thread(loras.file_for, "Remote Ada/Remote-Ada/v1") == (path, "ohwx_ada")
    assert path.stat().st_mtime_ns == before, "a cached file is not downloaded again"
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no partial download left behind"


async def test_a_cached_lora_loads_with_no_server(
    training_service: TrainingService, trained: Trained, tmp_path: Path
) -> None:
    await asyncio.to_thread(remote(tmp_path, training_service.url, trained.key).file_for, ENTRY)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    shutil.move(tmp_path / server_folder_name(training_service.url), tmp_path / server_folder_name(dead))
    offline = remote(tmp_path, dead, trained.key)
    assert await asyncio.to_thread(offline.entries) == [ENTRY]
    assert await asyncio.to_thread(offline.problem, ENTRY) is True
    path, trigger = await asyncio.to_thread(offline.file_for, ENTRY)
    assert (path.read_bytes(), trigger) == (trained.file, "ohwx_ada")
    _listed, error = offline.listing()
    assert error is not None
    assert "cannot reach the LoRA Atelier server" in str(error)
    assert "is not in the local cache, and cannot reach" in str(await asyncio.to_thread(offline.problem, "x/y/v9"))


async def test_a_refused_key_is_said_in_words(training_service: TrainingService, tmp_path: Path) -> None:
    loras = remote(tmp_path, training_service.url, "not-a-key")
    assert await asyncio.to_thread(loras.entries) == []
    problem = await asyncio.to_thread(loras.problem, ENTRY)
    assert isinstance(problem, str)
    assert problem.startswith("Remote Ada/Remote-Ada/v1 is not in the local cache, and the LoRA Atelier server at ")
    assert "refused the API key (HTTP 401" in problem
    with pytest.raises(KeyRefused, match="set the right key in the Atelier sidebar"):
        await asyncio.to_thread(loras.file_for, ENTRY)
    assert files_under(tmp_path) == []


async def test_a_file_whose_sha256_is_not_the_published_one_is_refused(
    training_service: TrainingService, trained: Trained, tmp_path: Path
) -> None:
    svc = training_service
    async with svc.engine.begin() as conn:
        await conn.execute(
            text("UPDATE lora_versions SET sha256 = :bad WHERE sha256 = :good"),
            {"bad": "0" * 64, "good": trained.lora["sha256"]},
        )
    try:
        loras = remote(tmp_path, svc.url, trained.key)
        with pytest.raises(ChecksumMismatch, match="the file was refused"):
            await asyncio.to_thread(loras.file_for, ENTRY)
        assert files_under(tmp_path) == [], "nothing kept, no index entry"
    finally:
        async with svc.engine.begin() as conn:
            await conn.execute(
                text("UPDATE lora_versions SET sha256 = :good WHERE sha256 = :bad"),
                {"bad": "0" * 64, "good": trained.lora["sha256"]},
            )


async def test_a_cached_file_changed_on_disk_is_downloaded_again(
    training_service: TrainingService, trained: Trained, tmp_path: Path
) -> None:
    loras = remote(tmp_path, training_service.url, trained.key)
    path, _ = await asyncio.to_thread(loras.file_for, ENTRY)
    path.write_bytes(b"tampered")
    again, _ = await asyncio.to_thread(loras.file_for, ENTRY)
    assert again.read_bytes() == trained.file
