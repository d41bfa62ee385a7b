# SPDX-License-Identifier: Apache-2.0
"""A backend's images read from its output folder when this process knows it (``ATELIER_COMFYUI_OUTPUT_DIRS``,
or a local ComfyUI's), over ``/view`` otherwise or when the file is not found there."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from orchestrator.comfy import ComfyClient, ComfyConnection, OutputImage, RunSucceeded, run_prompt
from orchestrator.generation.catalog import ModelCatalog
from orchestrator.generation.generation_services import GenerationServices, raw_workflow_policy
from orchestrator.generation.outputs import INLINE_READ_MAX_BYTES, fetch_outputs, read_output
from orchestrator.settings import Settings
from tests.integration.comfy.conftest import FAST, txt2img
from tests.integration.conftest import Caller
from tests.integration.generation.conftest import GenerationService, get_json, submit
from tests.integration.generation.conftest import txt2img as txt2img_body
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.support.db import wait_for_terminal


@pytest.fixture
async def finished() -> AsyncIterator[tuple[StandinComfyUI, ComfyClient, RunSucceeded]]:
    """A stand-in that has just run a txt2img prompt, its client and the run's result."""
    async with StandinComfyUI(StandinOptions(time_scale=0.001)) as standin, aiohttp.ClientSession() as session:
        client = ComfyClient(standin.url, session, f"atelier-test-{uuid.uuid4().hex[:8]}")
        connection = ComfyConnection(standin.url, session, client.client_id)
        connection.start()
        try:
            result = await run_prompt(client, connection, txt2img(), str(uuid.uuid4()), None, FAST)
        finally:
            await connection.close()
        assert isinstance(result, RunSucceeded)
        standin.requests.clear()
        yield standin, client, result


async def test_images_are_read_from_the_output_folder_without_a_view_request(
    finished: tuple[StandinComfyUI, ComfyClient, RunSucceeded],
) -> None:
    standin, client, result = finished
    fetched = await fetch_outputs(client, uuid.uuid4(), result.images, standin.files.dirs["output"])

    assert standin.requests["GET /view"] == 0
    [(_, data)] = fetched
    assert data.startswith(b"\x89PNG")
    assert data == await client.view(result.images[0].filename, result.images[0].subfolder)


async def test_an_image_not_in_the_folder_is_fetched_over_view(
    finished: tuple[StandinComfyUI, ComfyClient, RunSucceeded], tmp_path: Path
) -> None:
    standin, client, result = finished
    [(_, data)] = await fetch_outputs(client, uuid.uuid4(), result.images, tmp_path)

    assert standin.requests["GET /view"] == 1
    assert data.startswith(b"\x89PNG")


async def test_a_path_that_leaves_the_folder_is_not_read(tmp_path: Path) -> None:
    folder = tmp_path / "output"
    folder.mkdir()
    (tmp_path / "secret.png").write_bytes(b"not yours")
    (folder / "ok.png").write_bytes(b"\x89PNG ok")
    big = b"\x89PNG" + bytes(INLINE_READ_MAX_BYTES)  # read in a worker thread
    (folder / "big.png").write_bytes(big)

    assert await read_output(folder, OutputImage("9", "secret.png", "..", "output")) is None
    assert await read_output(folder, OutputImage("9", "../secret.png", "", "output")) is None
    assert await read_output(folder, OutputImage("9", "missing.png", "", "output")) is None
    assert await read_output(folder, OutputImage("9", "ok.png", "", "output")) == b"\x89PNG ok"
    assert await read_output(folder, OutputImage("9", "big.png", "", "output")) == big


def test_the_configured_folders_are_found_by_url(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://unused/x",
        comfyui_urls=["http://127.0.0.1:8188", "http://10.0.0.2:8188"],
        comfyui_output_dirs="http://127.0.0.1:8188/=/srv/comfy/output",
    )
    services = GenerationServices(ModelCatalog(tmp_path), raw_workflow_policy(settings), settings)

    assert services.output_dir("http://127.0.0.1:8188") == Path("/srv/comfy/output")
    assert services.output_dir("http://10.0.0.2:8188") is None
    with pytest.raises(ValidationError, match="is not url=folder"):
        Settings(database_url="postgresql+asyncpg://unused/x", comfyui_output_dirs="/srv/comfy/output")


async def test_the_service_reads_the_folder_of_the_backend_it_knows_and_views_the_other(
    generation_service: GenerationService, http: aiohttp.ClientSession, me: Caller
) -> None:
    svc = generation_service
    views = {b.url: b.requests["GET /view"] for b in svc.backends}
    job_id = await submit(http, svc, me, txt2img_body(seed=4242))
    await wait_for_terminal(svc.database_url, [uuid.UUID(job_id)])
    generation = await get_json(http, svc, me, f"/v1/generations/{job_id}")

    assert generation["status"] == "succeeded"
    ran_on = svc.standin(generation["result"]["backend"])
    asked = ran_on.requests["GET /view"] - views[ran_on.url]
    assert asked == (0 if ran_on is svc.backends[1] else 1)
