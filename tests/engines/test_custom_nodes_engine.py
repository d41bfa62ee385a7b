# SPDX-License-Identifier: Apache-2.0
"""The Atelier node pack in a REAL ComfyUI: listed with the V3 schema, and graphs through it run.

Runs when ``ATELIER_TEST_COMFYUI_DIR`` (a ComfyUI checkout) and ``ATELIER_TEST_COMFYUI_PYTHON`` (its
Python) are set. Starts its own ComfyUI (CPU, a free port, its own base directory, database and models store)
with the pack linked into its ``custom_nodes``, next to a small harness that registers the pack's classic
(V1) classes under ``Classic…`` ids, so both entry styles run in the same server. The models store holds a
slim checkpoint made by ``atelier dev make-checkpoint`` and a slim LoRA made by ``atelier dev make-lora``,
published by the trainer's publisher to ``loras/<subject>/v1/<name>.safetensors`` with its trigger word.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from PIL import Image

from comfy_workflows import known_nodes
from comfy_workflows.known_nodes import (
    COMFYUI_VERSION,
    KNOWN_NODES_FILE,
    known_definitions,
    known_object_info,
)
from comfy_workflows.object_info import ObjectInfo
from comfy_workflows.registration import RegisteredTemplate, register_workflow, render
from comfy_workflows.ui_format import api_to_ui
from custom_nodes.atelier_nodes.vocabulary import NODE_IDS
from orchestrator.comfy import (
    ComfyClient,
    ComfyConnection,
    LocalComfyConfig,
    LocalComfyUI,
    PromptRejected,
    RunFailed,
    RunSucceeded,
    run_prompt,
)
from tests.unit.custom_nodes.recorded import recorded_object_info
from tests.unit.custom_nodes.test_contract_with_service import comparable
from trainer.provenance import Provenance, write_with_provenance

pytestmark = [pytest.mark.engines, pytest.mark.slow, pytest.mark.timeout(600)]

COMFY_DIR = os.environ.get("ATELIER_TEST_COMFYUI_DIR")
COMFY_PYTHON = os.environ.get("ATELIER_TEST_COMFYUI_PYTHON")
if not (COMFY_DIR and COMFY_PYTHON):
    pytest.skip(
        "ENGINE TEST SKIPPED: set ATELIER_TEST_COMFYUI_DIR (a ComfyUI checkout) and ATELIER_TEST_COMFYUI_PYTHON "
        "(its Python) to run the Atelier node pack in a real ComfyUI",
        allow_module_level=True,
    )

PACK = Path(__file__).resolve().parents[2] / "custom_nodes" / "atelier_nodes"
ATELIER = Path(sys.executable).with_name("atelier")
CHECKPOINT = "sd15-slim-random.safetensors"
SUBJECT = "6c1e0d3a-engine-subject"
LORA_FILE = f"{SUBJECT}/v1/tester.safetensors"
TRIGGER = "ohwx tester"
LORA_ENTRY = f"{SUBJECT}/v1/tester (trigger: {TRIGGER})"
CLASSIC = "Classic"

CLASSIC_HARNESS = '''"""Test harness: the Atelier pack's classic (V1) node classes under Classic… ids."""
import importlib
import importlib.util
import sys

PACK = {pack!r}
spec = importlib.util.spec_from_file_location(
    "atelier_classic_pack", PACK + "/__init__.py", submodule_search_locations=[PACK]
)
sys.modules["atelier_classic_pack"] = importlib.util.module_from_spec(spec)  # not run: only nodes_classic is wanted
classic = importlib.import_module("atelier_classic_pack.nodes_classic")
NODE_CLASS_MAPPINGS = {{"Classic" + k: v for k, v in classic.NODE_CLASS_MAPPINGS.items()}}
NODE_DISPLAY_NAME_MAPPINGS = {{"Classic" + k: v for k, v in classic.NODE_DISPLAY_NAME_MAPPINGS.items()}}
'''


def _atelier(*args: str) -> None:
    subprocess.run([str(ATELIER), "dev", *args], check=True, capture_output=True, timeout=300)


def _models_store(root: Path) -> Path:
    _atelier("make-checkpoint", "--out", str(root / "checkpoints" / CHECKPOINT))
    trained = root.parent / "trained.safetensors"
    _atelier("make-lora", "--variant", "slim", "--out", str(trained))
    provenance = Provenance(
        subject_id=SUBJECT,
        consent_sha256="c" * 64,
        dataset_manifest_sha256="d" * 64,
        base_model="sd15-slim",
        base_model_sha256="b" * 64,
        base_family="sd15",
        trigger_word=TRIGGER,
        service_version="engine-test",
        lora_name="tester",
        lora_version=1,
        training_job_id="engine-test-job",
    )
    write_with_provenance(trained, root / "loras" / LORA_FILE, provenance.metadata())
    return root


def _base_directory(root: Path) -> Path:
    custom_nodes = root / "custom_nodes"
    custom_nodes.mkdir(parents=True)
    (custom_nodes / "atelier_nodes").symlink_to(PACK, target_is_directory=True)
    (custom_nodes / "atelier_classic_harness.py").write_text(CLASSIC_HARNESS.format(pack=str(PACK)))
    return root


@dataclass(frozen=True)
class Engine:
    """The running ComfyUI and how to talk to it."""

    local: LocalComfyUI
    client: ComfyClient
    connection: ComfyConnection
    object_info: dict[str, Any]

    def log_text(self) -> str:
        return self.local.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    """Our own ComfyUI with the pack installed (not the shared one on 8188)."""
    root = tmp_path_factory.mktemp("nodes-engine")
    config = LocalComfyConfig(
        comfy_dir=Path(str(COMFY_DIR)),
        python=Path(str(COMFY_PYTHON)),
        models_dir=_models_store(root / "models"),
        var_dir=root / "var",
        cpu=True,
        extra_args=(
            "--base-directory", str(_base_directory(root / "base")),
            "--database-url", f"sqlite:///{root / 'comfyui.db'}",
            "--disable-api-nodes",
        ),
        start_timeout_s=240.0,
    )  # fmt: skip
    local = LocalComfyUI(config)
    await local.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = ComfyClient(local.url, session, f"atelier-nodes-{uuid.uuid4().hex[:8]}")
            connection = ComfyConnection(local.url, session, client.client_id)
            connection.start()
            assert await connection.wait_connected(30.0)
            try:
                yield Engine(local, client, connection, await client.object_info())
            finally:
                await connection.close()
    finally:
        await local.stop()


def _normalised(entry: dict[str, Any]) -> dict[str, Any]:
    """A class entry of ``/object_info`` with combo options emptied (as the recording keeps them)."""
    entry = json.loads(json.dumps(entry))
    for section in entry["input"].values():
        for spec in section.values():
            if spec[0] == "COMBO":
                spec[1]["options"] = []
    return entry


async def test_object_info_lists_the_nodes_with_the_v3_schema(engine: Engine) -> None:
    if os.environ.get("ATELIER_TEST_REFRESH_RECORDINGS") == "1":
        data = {"comfyui_version": COMFYUI_VERSION, "nodes": known_definitions(engine.object_info)}
        KNOWN_NODES_FILE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        known_nodes._known_raw.cache_clear()
    recorded = recorded_object_info()
    assert known_definitions(engine.object_info) == known_object_info().raw, "the packaged definitions are stale"
    for node_id in NODE_IDS:
        entry = engine.object_info[node_id]
        assert entry["python_module"] == "custom_nodes.atelier_nodes"
        assert "output_matchtypes" in entry, f"{node_id} was not registered through the V3 API"
        assert _normalised(entry) == recorded[node_id]
        classic = _normalised(engine.object_info[CLASSIC + node_id])
        assert comparable(classic) == comparable(recorded[node_id]), f"the classic {node_id} differs"
    lora = engine.object_info["AtelierLoraLoader"]["input"]["required"]["lora"]
    assert lora[1]["options"] == [LORA_ENTRY]
    checkpoint = engine.object_info["AtelierCheckpointInput"]["input"]["required"]["ckpt_name"]
    assert checkpoint[1]["options"] == [CHECKPOINT]
    classic = engine.object_info[CLASSIC + "AtelierLoraLoader"]
    assert "output_matchtypes" not in classic
    assert classic["input"]["required"]["lora"][0] == [LORA_ENTRY]
    log = engine.log_text()
    assert str(PACK.name) in log  # ComfyUI's import summary names the pack: this is the right log
    assert "IMPORT FAILED" not in log


def marked_graph(prefix: str = "") -> dict[str, Any]:
    """A small txt2img graph through the Atelier LoRA loader, its parameters marked; node classes of the pack
    get ``prefix`` (``Classic`` for the V1 classes)."""
    graph: dict[str, Any] = {
        "1": {"class_type": "AtelierCheckpointInput", "inputs": {"name": "checkpoint", "ckpt_name": CHECKPOINT}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ["1", 0]}},
        "3": {"class_type": "AtelierLoraLoader", "inputs": {
            "model": ["2", 0], "clip": ["2", 1], "lora": LORA_ENTRY,
            "strength_model": ["4", 0], "strength_clip": ["4", 0],
        }},
        "4": {"class_type": "AtelierFloatInput", "inputs": {"name": "strength", "value": 1.0, "min": 0.0, "max": 2.0}},
        "5": {"class_type": "AtelierPromptInput", "inputs": {"name": "prompt", "text": "a red circle"}},
        "6": {"class_type": "StringConcatenate", "inputs": {
            "string_a": ["3", 2], "string_b": ["5", 0], "delimiter": ", ",
        }},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["6", 0], "clip": ["3", 1]}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["3", 1]}},
        "9": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": {"class_type": "AtelierSeedInput", "inputs": {"name": "seed", "seed": 5}},
        "11": {"class_type": "AtelierIntInput", "inputs": {"name": "steps", "value": 2, "min": 1, "max": 8}},
        "12": {"class_type": "KSampler", "inputs": {
            "model": ["3", 0], "positive": ["7", 0], "negative": ["8", 0], "latent_image": ["9", 0], "seed": ["10", 0],
            "steps": ["11", 0], "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
        }},
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["2", 2]}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": "atelier_nodes"}},
        "15": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
    }  # fmt: skip
    for node in graph.values():
        if node["class_type"].startswith("Atelier"):
            if node["class_type"].endswith("Input"):
                node["inputs"]["description"] = ""  # as the editor sends it
            node["class_type"] = prefix + node["class_type"]
    return graph


async def _run(engine: Engine, graph: dict[str, Any]) -> RunSucceeded:
    result = await run_prompt(engine.client, engine.connection, graph, str(uuid.uuid4()))
    assert isinstance(result, RunSucceeded), result
    return result


async def _image(engine: Engine, result: RunSucceeded) -> np.ndarray:
    (image,) = result.images
    data = await engine.client.view(image.filename, image.subfolder, image.type)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _register(engine: Engine, workflow: dict[str, Any]) -> RegisteredTemplate:
    return register_workflow(workflow, engine.object_info, name="engine-marked")


async def test_a_registered_graph_runs_with_the_lora_and_its_trigger_word(engine: Engine) -> None:
    template = _register(engine, marked_graph())
    assert [f.name for f in template.fields] == ["checkpoint", "strength", "prompt", "seed", "steps"]
    results = []
    for strength in (1.0, 0.0):
        rendered = render(template, {"strength": strength, "prompt": "a red circle"}, engine.object_info)
        assert rendered.issues == []
        results.append(await _run(engine, rendered.built.graph))
    assert results[0].outputs["15"]["text"] == [f"{TRIGGER}, a red circle"]
    with_lora, without = [await _image(engine, result) for result in results]
    assert with_lora.shape == (64, 64, 3)
    assert with_lora.std() > 0  # a NaN latent decodes to a flat image
    assert not np.array_equal(with_lora, without)  # the LoRA changed the model
    assert "lora key not loaded" not in engine.log_text()


async def test_the_classic_nodes_run_too(engine: Engine) -> None:
    graph = marked_graph(CLASSIC)
    graph["16"] = {"class_type": CLASSIC + "AtelierLoraInput", "inputs": {"name": "lora", "lora_name": LORA_FILE}}
    graph["17"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["3", 0], "clip": ["3", 1], "lora_name": ["16", 0], "strength_model": 0.5, "strength_clip": 0.5,
    }}  # fmt: skip
    graph["12"]["inputs"]["model"] = ["17", 0]
    graph["5"]["inputs"]["text"] = "a blue square"
    result = await _run(engine, graph)
    assert result.outputs["15"]["text"] == [f"{TRIGGER}, a blue square"]
    assert (await _image(engine, result)).std() > 0
    assert "lora key not loaded" not in engine.log_text()


async def test_an_out_of_bounds_marker_stops_the_run(engine: Engine) -> None:
    graph = marked_graph()
    graph["11"]["inputs"]["value"] = 9  # above the marker's own max of 8
    result = await run_prompt(engine.client, engine.connection, graph, str(uuid.uuid4()))
    assert isinstance(result, RunFailed), result
    assert (result.node_id, result.exception_type) == ("11", "ValueError")
    assert "outside [1, 8]" in result.exception_message


def test_the_editor_format_round_trip_registers_the_same_template(engine: Engine) -> None:
    info = ObjectInfo(engine.object_info)
    graph = marked_graph()
    for node in graph.values():
        node["_meta"] = {"title": node["class_type"]}
    from_api = _register(engine, graph)
    from_editor = _register(engine, api_to_ui(from_api.graph, info))
    assert from_editor.fields == from_api.fields
    assert from_editor.build({"seed": 3}).graph == from_api.build({"seed": 3}).graph


async def test_the_image_marker_loads_an_uploaded_image(engine: Engine) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(picture, format="PNG")
    uploaded = await engine.client.upload_image(picture.getvalue(), f"atelier-nodes-{uuid.uuid4().hex[:8]}.png")
    graph = marked_graph()
    graph["16"] = {"class_type": "AtelierImageInput", "inputs": {"name": "init_image", "image": uploaded}}
    graph["17"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["16", 0], "vae": ["2", 2]}}
    graph["12"]["inputs"].update(latent_image=["17", 0], denoise=0.6)
    del graph["9"]
    template = _register(engine, graph)
    assert template.input_schema()["required"] == ["init_image"]
    rendered = render(template, {"init_image": uploaded, "prompt": "a green circle"}, engine.object_info)
    assert rendered.issues == []
    result = await _run(engine, rendered.built.graph)
    assert (await _image(engine, result)).std() > 0
    missing = render(template, {"init_image": "not-uploaded.png"}, engine.object_info).built.graph
    del missing["15"]  # the text preview does not need the image: without it, no output is left to run
    with pytest.raises(PromptRejected) as caught:
        await engine.client.submit(missing, str(uuid.uuid4()))
    assert "Invalid image file: not-uploaded.png" in json.dumps(caught.value.node_errors)


async def test_a_newly_published_version_is_offered_without_a_restart(engine: Engine, tmp_path: Path) -> None:
    trained = tmp_path / "trained-v2.safetensors"
    _atelier("make-lora", "--variant", "slim", "--seed", "1", "--out", str(trained))
    metadata = {"atelier_trigger_word": "ohwx tester v2", "atelier_lora_name": "tester", "atelier_lora_version": "2"}
    write_with_provenance(
        trained, engine.local.config.models_dir / "loras" / SUBJECT / "v2" / "tester.safetensors", metadata
    )
    info = await engine.client.object_info("AtelierLoraLoader")
    assert info["AtelierLoraLoader"]["input"]["required"]["lora"][1]["options"] == [
        LORA_ENTRY,
        f"{SUBJECT}/v2/tester (trigger: ohwx tester v2)",
    ]
