# SPDX-License-Identifier: Apache-2.0
"""ComfyUI's real editor round trip and the node pack in someone else's ComfyUI, end to end.

A real ComfyUI v0.33.0 serves its real frontend (the ``comfyui-frontend-package`` its requirements pin) with our
node pack installed; Playwright drives Debian's headless Chromium (never a downloaded browser; every request to
a host other than 127.0.0.1 refused). The service runs beside it (tests/engines/editor_stack.py).

- The remote LoRA loader inside ComfyUI: downloads a LoRA trained through the service once (sha256 checked),
  outputs its trigger word, runs from its cache while the service is down, refuses a file whose hash is not
  the published one.
- The editor round trip: our ``ui_graph`` loads through ``app.loadGraphData`` with no missing node and no
  error; a widget and a marker's default are changed; ``app.graphToPrompt()`` exports what the editor would
  queue; that registers through our API and generates; the change is in the result's recorded parameters.
- The Atelier sidebar: lists the LoRA with its trigger word and samples and inserts a loader in one click,
  starts a training from a folder of photos with consent and shows its progress live, registers the open
  graph; a refused key is shown in the sidebar and on the node, and ComfyUI keeps running.

Screenshots land in ``ATELIER_TEST_ARTIFACTS`` (default ``var/test-artifacts``) under ``editor/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import text

from comfy_workflows.ui_format import api_to_ui
from orchestrator.comfy import ComfyClient, ComfyConnection, PromptRejected, RunFailed, RunSucceeded, run_prompt
from tests.engines.editor_stack import CHECKPOINT, EditorStack, editor_stack, train_lora
from tests.integration.training.conftest import face_photos
from tests.support.browser import chromium_page
from tests.support.db import scratch_database
from tests.support.sse import collect

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(900)]

COMFY_DIR = os.environ.get("ATELIER_TEST_COMFYUI_DIR")
COMFY_PYTHON = os.environ.get("ATELIER_TEST_COMFYUI_PYTHON")
if not (COMFY_DIR and COMFY_PYTHON):
    pytest.skip(
        "ENGINE TEST SKIPPED: set ATELIER_TEST_COMFYUI_DIR (a ComfyUI checkout with its frontend package) and "
        "ATELIER_TEST_COMFYUI_PYTHON (its Python) to run ComfyUI's real editor in headless Chromium",
        allow_module_level=True,
    )

ARTIFACTS = Path(os.environ.get("ATELIER_TEST_ARTIFACTS", "var/test-artifacts")) / "editor"
VIEWPORT = {"width": 1600, "height": 1000}
READY = "window.app && window.app.graph && window.app.canvas && window.LiteGraph"
TRIGGER = "ohwx_ada"
ENTRY = f"Ada/Ada/v1 (trigger: {TRIGGER})"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with scratch_database("editor") as url:
        yield url


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> AsyncIterator[EditorStack]:
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_SD_STEP_DELAY", "1.0")  # slow enough for the sidebar to show a training's progress
        async with editor_stack(
            tmp_path_factory.mktemp("editor"), database_url, str(COMFY_DIR), str(COMFY_PYTHON)
        ) as s:
            print(f"\neditor stack up in {time.monotonic() - started:.1f} s")  # noqa: T201 - the engine test's figures
            yield s


@pytest.fixture(scope="module")
async def trained(stack: EditorStack) -> dict[str, Any]:
    """The LoRA "Ada" v1, trained through the API (stand-in trainer), with sample images."""
    async with aiohttp.ClientSession() as http:
        return await train_lora(http, stack, "Ada", TRIGGER, sample_prompts=["portrait"], save_every_n_steps=3)


@pytest.fixture(scope="module")
async def editor(stack: EditorStack) -> AsyncIterator[Any]:
    """ComfyUI's editor in headless Chromium, ready, its first-run dialog closed."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tutorial_done = f"{stack.comfy_url}/settings/Comfy.TutorialCompleted"  # else a templates dialog hides the canvas
    async with aiohttp.ClientSession() as http, http.post(tutorial_done, json=True) as response:
        assert response.status == 200, await response.text()
    async with chromium_page(VIEWPORT) as (page, refused):
        started = time.monotonic()
        await page.goto(stack.comfy_url)
        await page.wait_for_function(READY, timeout=60_000)
        print(f"editor ready in {time.monotonic() - started:.1f} s")  # noqa: T201
        yield page
        assert all("127.0.0.1" not in url for url in refused)


async def _comfy_post(http: aiohttp.ClientSession, stack: EditorStack, path: str, body: Any) -> Any:
    async with http.post(stack.comfy_url + path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def _set_key(http: aiohttp.ClientSession, stack: EditorStack, key: str) -> dict[str, Any]:
    """Store the API key through the pack's route on ComfyUI (as the sidebar's Save does)."""
    status: dict[str, Any] = await _comfy_post(
        http, stack, "/atelier/connection", {"server_url": stack.service_url, "api_key": key}
    )
    return status


def _remote_graph(entry: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "2": {"class_type": "AtelierRemoteLoraLoader", "inputs": {
            "model": ["1", 0], "clip": ["1", 1], "lora": entry, "strength_model": 1.0, "strength_clip": 1.0,
        }},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
    }  # fmt: skip


async def _run(http: aiohttp.ClientSession, stack: EditorStack, graph: dict[str, Any]) -> Any:
    client = ComfyClient(stack.comfy_url, http, f"editor-{uuid.uuid4().hex[:6]}")
    connection = ComfyConnection(stack.comfy_url, http, client.client_id)
    connection.start()
    try:
        assert await connection.wait_connected(30.0)
        return await run_prompt(client, connection, graph, str(uuid.uuid4()))
    finally:
        await connection.close()


def _cached_files(stack: EditorStack) -> list[Path]:
    return sorted(p for p in stack.remote_cache.rglob("*.safetensors")) if stack.remote_cache.exists() else []


async def test_the_remote_loader_downloads_once_and_runs_from_its_cache(
    stack: EditorStack, trained: dict[str, Any]
) -> None:
    async with aiohttp.ClientSession() as http:
        status = await _set_key(http, stack, stack.key)
        assert (status["reachable"], status["key_set"]) == (True, True)
        assert stack.key not in json.dumps(status), "the key never leaves the ComfyUI server"
        info = await (await http.get(f"{stack.comfy_url}/object_info/AtelierRemoteLoraLoader")).json()
        assert ENTRY in info["AtelierRemoteLoraLoader"]["input"]["required"]["lora"][1]["options"]

        result = await _run(http, stack, _remote_graph(ENTRY))
        assert isinstance(result, RunSucceeded), result
        assert result.outputs["3"]["text"] == [TRIGGER]
        [cached] = _cached_files(stack)
        assert cached.name == "Ada.safetensors"
        assert hashlib.sha256(cached.read_bytes()).hexdigest() == trained["sha256"]

        offline_graph = _remote_graph(ENTRY)
        offline_graph["2"]["inputs"]["strength_model"] = 0.5  # a new input: ComfyUI runs the loader again
        async with stack.offline():  # the service is down: the cached LoRA still loads
            again = await _run(http, stack, offline_graph)
        assert isinstance(again, RunSucceeded), again
        assert again.outputs["3"]["text"] == [TRIGGER]
        assert _cached_files(stack) == [cached]


async def test_a_file_whose_sha256_is_not_the_published_one_is_refused_in_comfyui(
    stack: EditorStack, trained: dict[str, Any]
) -> None:
    shutil.rmtree(stack.remote_cache, ignore_errors=True)
    async with stack.engine.begin() as conn:
        await conn.execute(text("UPDATE lora_versions SET sha256 = :bad WHERE sha256 = :good"),
                           {"bad": "0" * 64, "good": trained["sha256"]})  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            result = await _run(http, stack, _remote_graph(ENTRY))
        assert isinstance(result, RunFailed), result
        assert result.node_id == "2"
        assert "the file was refused (not kept)" in result.exception_message
        assert _cached_files(stack) == []
    finally:
        async with stack.engine.begin() as conn:
            await conn.execute(text("UPDATE lora_versions SET sha256 = :good WHERE sha256 = :bad"),
                               {"bad": "0" * 64, "good": trained["sha256"]})  # fmt: skip


async def test_a_wrong_key_is_a_clear_error_on_the_node_not_a_crash(stack: EditorStack) -> None:
    shutil.rmtree(stack.remote_cache, ignore_errors=True)
    async with aiohttp.ClientSession() as http:
        status = await _set_key(http, stack, "atl_wrong_key")
        assert status["reachable"] is False
        assert "refused the API key" in status["error"]
        client = ComfyClient(stack.comfy_url, http, "wrong-key")
        with pytest.raises(PromptRejected) as caught:
            await client.submit(_remote_graph(ENTRY), str(uuid.uuid4()))
        details = json.dumps(caught.value.node_errors)
        assert "refused the API key (HTTP 401" in details
        assert (await http.get(f"{stack.comfy_url}/system_stats")).status == 200  # ComfyUI runs on
        await _set_key(http, stack, stack.key)


# ------------------------------------------------------------------------------------------- the editor


async def _load(page: Any, graph: dict[str, Any]) -> dict[str, Any]:
    await page.evaluate("async (graph) => { await app.loadGraphData(graph); }", graph)
    state: dict[str, Any] = await page.evaluate(
        """() => {
            const nodes = app.graph.nodes ?? app.graph._nodes;
            return {
                count: nodes.length,
                missing: nodes.filter((n) => !LiteGraph.registered_node_types[n.type]).map((n) => n.type),
                errors: nodes.filter((n) => n.has_errors).map((n) => n.type),
            };
        }"""
    )
    return state


async def _fit(page: Any) -> None:
    """The whole graph in view, drawn in full even when small (for the screenshots)."""
    await page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.Canvas.FitView'); }")
    await page.evaluate("() => { app.canvas.min_font_size_for_lod = 0; app.graph.setDirtyCanvas(true, true); }")


async def _view(page: Any, x: float, y: float, scale: float) -> None:
    """Show the graph from canvas point (x, y) at the top left, at ``scale`` (for the screenshots)."""
    await page.evaluate(
        """([x, y, scale]) => {
            app.canvas.ds.scale = scale;
            app.canvas.ds.offset = [80 / scale - x, 50 / scale - y];  // clear of the icon bar and the tabs
            app.graph.setDirtyCanvas(true, true);
        }""",
        [x, y, scale],
    )


async def _center_on(page: Any, node_type: str, scale: float = 0.9) -> None:
    """Put the first node of ``node_type`` in the middle of the canvas at ``scale`` (for the screenshots)."""
    await page.evaluate(
        """([type, scale]) => {
            const node = (app.graph.nodes ?? app.graph._nodes).find((n) => n.type === type);
            const canvas = app.canvas.canvas;
            app.canvas.ds.scale = scale;
            app.canvas.ds.offset = [
                canvas.width / 2 / scale - node.pos[0] - node.size[0] / 2,
                canvas.height / 2 / scale - node.pos[1] - node.size[1] / 2,
            ];
            app.graph.setDirtyCanvas(true, true);
        }""",
        [node_type, scale],
    )


async def _set_widget(page: Any, title: str, widget: str, value: Any) -> None:
    await page.evaluate(
        """([title, name, value]) => {
            const node = (app.graph.nodes ?? app.graph._nodes).find((n) => n.title === title);
            const w = node.widgets.find((w) => w.name === name);
            w.value = value;
            w.callback?.(value);
            app.graph.setDirtyCanvas(true, true);
        }""",
        [title, widget, value],
    )


async def _export(page: Any) -> dict[str, Any]:
    output: dict[str, Any] = await page.evaluate("async () => (await app.graphToPrompt()).output")
    return output


async def _json(http: aiohttp.ClientSession, stack: EditorStack, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, stack.service_url + path, json=body, headers=stack.headers) as response:
        return response.status, await response.json(content_type=None)


def _png_prompt(data: bytes) -> dict[str, Any]:
    """The graph ComfyUI's SaveImage wrote into the PNG (its ``prompt`` text chunk)."""
    with Image.open(io.BytesIO(data)) as image:
        return dict(json.loads(image.text["prompt"]))  # type: ignore[attr-defined]  # a PNG: its text chunks


async def test_the_editor_round_trip(stack: EditorStack, editor: Any) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        _status, detail = await _json(http, stack, "GET", "/v1/templates/txt2img")
        assert detail["example"]["base_model"] == CHECKPOINT
        state = await _load(editor, detail["ui_graph"])
        assert (state["missing"], state["errors"]) == ([], []), state
        assert state["count"] == len(detail["api_graph"])
        await _fit(editor)
        await editor.screenshot(path=str(ARTIFACTS / "01-template-loaded.png"))

        await _set_widget(editor, "KSampler", "denoise", 0.9)  # a plain widget
        for field, value in (("steps", 2), ("width", 64), ("height", 64)):  # markers' defaults
            await _set_widget(editor, field, "value", value)
        await _view(editor, 20, 660, 0.8)  # the width, height, steps, cfg and sampler markers
        await editor.screenshot(path=str(ARTIFACTS / "02-template-edited.png"))
        workflow = await _export(editor)

        status, summary = await _json(http, stack, "POST", "/v1/templates", {"name": "editor-rt", "workflow": workflow})
        assert status == 201, summary
        assert summary["input_schema"]["properties"]["steps"]["default"] == 2
        status, accepted = await _json(http, stack, "POST", "/v1/generations", {
            "template": "editor-rt", "prompt": "a red circle on white",
        })  # fmt: skip
        assert status == 202, accepted
        events = await collect(http, stack.service_url + f"/v1/jobs/{accepted['id']}/events", headers=stack.headers)
        assert events[-1].event == "job.succeeded", events[-1]
        _status, generation = await _json(http, stack, "GET", f"/v1/generations/{accepted['id']}")
        assert {k: generation["params"][k] for k in ("steps", "width", "height", "prompt")} == {
            "steps": 2, "width": 64, "height": 64, "prompt": "a red circle on white",
        }  # fmt: skip
        async with http.get(stack.service_url + generation["images"][0]["url"], headers=stack.headers) as response:
            ran = _png_prompt(await response.read())
        [sampler] = [node for node in ran.values() if node["class_type"] == "KSampler"]
        assert sampler["inputs"]["denoise"] == 0.9

        _status, registered = await _json(http, stack, "GET", "/v1/templates/editor-rt")
        reloaded = await _load(editor, registered["ui_graph"])
        assert (reloaded["missing"], reloaded["errors"]) == ([], []), reloaded
    print(f"editor round trip: {time.monotonic() - started:.1f} s")  # noqa: T201


# ------------------------------------------------------------------------------------------- the sidebar


async def _shows(locator: Any, text: str, timeout_ms: float = 30_000) -> None:
    """Wait until ``locator`` contains ``text``; on timeout the failure shows what it contains instead."""
    from playwright.async_api import expect

    await expect(locator).to_contain_text(text, timeout=timeout_ms)


async def _open_sidebar(page: Any) -> None:
    if not await page.locator("[data-testid=atelier-sidebar]").is_visible():
        await page.locator(".atelier-tab-button").click()
    await page.locator("[data-testid=atelier-sidebar]").wait_for()


async def test_the_sidebar(stack: EditorStack, editor: Any, trained: dict[str, Any], tmp_path: Path) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        _status, detail = await _json(http, stack, "GET", "/v1/templates/txt2img")
        await _set_key(http, stack, "")  # no key stored: the sidebar's form sets it
    await _load(editor, detail["ui_graph"])
    await _open_sidebar(editor)
    status = editor.locator("[data-testid=atelier-connection-status]")
    await _shows(status, "401")  # the server wants a key
    assert await editor.locator("[data-testid=atelier-url]").input_value() == stack.service_url  # from ATELIER_URL
    await editor.locator("[data-testid=atelier-key]").fill(stack.key)
    await editor.locator("[data-testid=atelier-save-connection]").click()
    await _shows(status, "Connected to")

    lora = editor.locator("[data-testid=atelier-lora]", has_text="Ada v1")
    await lora.wait_for()
    assert await lora.locator("[data-testid=atelier-trigger]").inner_text() == TRIGGER
    samples = lora.locator("img")
    assert await samples.count() == 2  # the samples at steps 3 and 6, through the pack's proxy
    await editor.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=atelier-lora] img')].every((i) => i.naturalWidth > 0)"
    )
    await lora.locator("[data-testid=atelier-insert]").click()
    inserted = await editor.evaluate(
        """() => (app.graph.nodes ?? app.graph._nodes).filter((n) => n.type === "AtelierRemoteLoraLoader")
            .map((n) => n.widgets.find((w) => w.name === "lora").value)"""
    )
    assert inserted == [ENTRY]
    await _center_on(editor, "AtelierRemoteLoraLoader")
    await editor.screenshot(path=str(ARTIFACTS / "03-sidebar-loras.png"))
    await editor.evaluate(  # unwired, it would stop the graph from registering: take it out again
        """() => (app.graph.nodes ?? app.graph._nodes).filter((n) => n.type === "AtelierRemoteLoraLoader")
            .forEach((n) => app.graph.remove(n))"""
    )

    photos = tmp_path / "photos"
    photos.mkdir()
    for index, data in enumerate(face_photos()[:2]):
        (photos / f"grace-{index}.jpg").write_bytes(data)
    await editor.locator("[data-testid=atelier-subject-name]").fill("Grace")
    await editor.locator("[data-testid=atelier-trigger-word]").fill("ohwx_grace")
    await editor.locator("[data-testid=atelier-consent-confirmed]").check()
    await editor.locator("[data-testid=atelier-consent-adult]").check()
    await editor.locator("[data-testid=atelier-consent-statement]").fill("signed release, engine test")
    await editor.locator("[data-testid=atelier-photos]").set_input_files(str(photos))
    await editor.locator("[data-testid=atelier-base-model]").select_option(CHECKPOINT)
    await editor.locator("[data-testid=atelier-steps]").fill("6")
    await editor.locator("[data-testid=atelier-start-training]").click()
    await _shows(editor.locator("[data-testid=atelier-training-status]"), "Training started with 2 photos")
    row = editor.locator("[data-testid=atelier-training]", has_text="Grace")
    await _shows(row.locator("[data-testid=atelier-training-progress]"), "loss", 60_000)  # live, mid-training
    await editor.screenshot(path=str(ARTIFACTS / "04-sidebar-training.png"))
    job_id = await row.get_attribute("data-id")
    await editor.evaluate("(id) => window.atelierSidebar.trainings.reconnect(id)", job_id)  # a lost connection
    await _shows(row.locator("[data-testid=atelier-training-progress]"), "succeeded", 120_000)
    async with aiohttp.ClientSession() as http:
        events = await collect(http, f"{stack.service_url}/v1/jobs/{job_id}/events", headers=stack.headers)
    received = [int(i) for i in (await row.get_attribute("data-event-ids") or "").split(",")]
    assert received == [e.id for e in events], "after the reconnect the stream went on from the last event"
    assert int(await row.get_attribute("data-progress-events") or 0) >= 6, "live job.progress events arrived"
    await editor.locator("[data-testid=atelier-lora]", has_text="Grace v1").wait_for(timeout=30_000)

    await editor.locator("[data-testid=atelier-template-name]").fill("from-sidebar")
    await editor.locator("[data-testid=atelier-register]").click()
    registered = editor.locator("[data-testid=atelier-register-status]")
    await _shows(registered, "Registered from-sidebar")
    await registered.scroll_into_view_if_needed()
    async with aiohttp.ClientSession() as http:
        status_code, detail = await _json(http, stack, "GET", "/v1/templates/from-sidebar")
    assert status_code == 200, detail
    assert "steps" in detail["input_schema"]["properties"]
    await editor.screenshot(path=str(ARTIFACTS / "05-sidebar-registered.png"))
    print(f"sidebar: {time.monotonic() - started:.1f} s")  # noqa: T201


async def test_a_wrong_key_shows_in_the_sidebar_and_on_the_node(stack: EditorStack, editor: Any) -> None:
    shutil.rmtree(stack.remote_cache, ignore_errors=True)
    async with aiohttp.ClientSession() as http:
        info = await (await http.get(f"{stack.comfy_url}/object_info")).json()
    state = await _load(editor, api_to_ui(_remote_graph(ENTRY), info))
    assert state["missing"] == [], state
    await _open_sidebar(editor)
    await editor.locator("[data-testid=atelier-key]").fill("atl_wrong_key")
    await editor.locator("[data-testid=atelier-save-connection]").click()
    status = editor.locator("[data-testid=atelier-connection-status]")
    await _shows(status, "refused the API key")
    await editor.evaluate("async () => { await app.queuePrompt(0, 1); }")
    errors = await editor.evaluate("() => JSON.stringify(app.extensionManager.lastNodeErrors ?? {})")
    assert "refused the API key" in errors
    flagged = await editor.evaluate(
        "() => (app.graph.nodes ?? app.graph._nodes).filter((n) => n.has_errors).map((n) => n.type)"
    )
    assert "AtelierRemoteLoraLoader" in flagged
    await editor.screenshot(path=str(ARTIFACTS / "06-wrong-key.png"))
    async with aiohttp.ClientSession() as http:
        assert (await http.get(f"{stack.comfy_url}/system_stats")).status == 200
        await _set_key(http, stack, stack.key)
