# SPDX-License-Identifier: Apache-2.0
"""The ComfyUI contract: the SAME cases against the stand-in (always) and a real ComfyUI
(``ATELIER_TEST_COMFYUI_URL``), each compared with the recordings in ``tests/fixtures/comfyui``.

The recordings come from a real ComfyUI (``python -m tests.contract.record --url ...`` renews
them), so the stand-in passing means it speaks what the engine spoke, and the real server
passing means the recordings are still what the engine speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import statistics
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from orchestrator.comfy import (
    ComfyClient,
    ComfyConnection,
    Event,
    Progress,
    PromptRejected,
    PromptRun,
    RunInterrupted,
    RunSucceeded,
    run_prompt,
)
from orchestrator.comfy.history import result_from_history
from tests.contract import cases
from tests.contract.canonical import (
    cached_nodes,
    comparable,
    message_keys,
    normalise_error,
    prompt_messages,
    routing_facts,
    shape,
)
from tests.standin.comfyui import StandinComfyUI, StandinOptions
from tests.standin.comfyui.files import png_bytes
from tests.standin.comfyui.recordings import (
    FIXTURES,
    SWITCH_LABELS,
    read_json,
    recorded,
    rerun_seconds,
    run_fixture,
    switch_extras,
)
from tests.standin.comfyui.server import default_models

REAL_URL = os.environ.get("ATELIER_TEST_COMFYUI_URL", "").rstrip("/")
NOT_RUN = (
    "ATELIER_TEST_COMFYUI_URL is not set: the REAL-ComfyUI half of the contract did NOT run; the stand-in "
    "was only compared with stored recordings. Point it at a ComfyUI to hold the stand-in to the engine."
)
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Target:
    """A server the cases run against."""

    name: str
    url: str
    checkpoint: str
    loras: tuple[str, ...]


def _pick_checkpoint(names: list[str]) -> str:
    slim = [n for n in names if "slim" in n]
    return (slim or names)[0]


@pytest.fixture(scope="module")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for the module."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        yield http


@pytest.fixture(scope="module", params=["standin", "real"])
async def target(request: pytest.FixtureRequest, session: aiohttp.ClientSession) -> AsyncIterator[Target]:
    """The stand-in, or the real ComfyUI when configured (skipped loudly otherwise)."""
    if request.param == "real":
        if not REAL_URL:
            pytest.skip(NOT_RUN)
        checkpoints = await cases.get_json(session, REAL_URL, "/models/checkpoints")
        loras = await cases.get_json(session, REAL_URL, "/models/loras")
        yield Target("real", REAL_URL, _pick_checkpoint(checkpoints), tuple(loras))
        return
    async with StandinComfyUI(StandinOptions(time_scale=0.02)) as standin:
        models = default_models()
        yield Target("standin", standin.url, models["checkpoints"][0], tuple(models["loras"]))


def _run(record: dict[str, Any], label: str) -> dict[str, Any]:
    run: dict[str, Any] = next(r for r in record["runs"] if r["label"] == label)
    return run


def _history_shape(entry: dict[str, Any]) -> Any:
    entry = copy.deepcopy(entry)
    for _kind, data in entry.get("status", {}).get("messages", []):
        for key in ("nodes", "executed"):  # cached/executed nodes depend on what ran before
            if isinstance(data.get(key), list):
                data[key] = []
    return shape(entry)


async def test_txt2img_message_sequence(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_txt2img(session, target.url, target.checkpoint)
    expected = run_fixture("txt2img")
    run, ref = observed["runs"][0], expected["runs"][0]

    assert run["submit"]["http_status"] == 200
    assert run["submit"]["body"]["prompt_id"] == run["prompt_id"]
    assert run["submit"]["body"]["node_errors"] == {}
    got, want = comparable((observed["frames"], run["prompt_id"]), (expected["frames"], ref["prompt_id"]))
    assert got == want
    assert message_keys(observed["frames"], run["prompt_id"]) == message_keys(expected["frames"], ref["prompt_id"])
    assert run["view"] == {"http_status": 200, "png": True}


async def test_history_shape(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_txt2img(session, target.url, target.checkpoint)
    run, ref = observed["runs"][0], run_fixture("txt2img")["runs"][0]

    assert _history_shape(run["history"]) == _history_shape(ref["history"])
    assert run["history"]["status"]["status_str"] == "success"
    assert run["history"]["prompt"][1] == run["prompt_id"]


async def test_prompt_error_bodies(target: Target, session: aiohttp.ClientSession) -> None:
    observed = (await cases.record_prompt_errors(session, target.url, target.checkpoint))["cases"]
    expected = read_json(FIXTURES / "prompt_errors.json")["cases"]
    ours = await cases.get_json(session, target.url, "/models/checkpoints")
    theirs = recorded().models["checkpoints"]

    for name, answer in observed.items():
        assert answer["http_status"] == expected[name]["http_status"], name
        assert normalise_error(answer["body"], ours) == normalise_error(expected[name]["body"], theirs), name


async def test_upload_answers(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_upload(session, target.url, png_bytes(4, 4, (1, 2, 3)), png_bytes(4, 4, (9, 9, 9)))
    fixture = read_json(FIXTURES / "upload_image.json")
    stems = (observed["stem"], fixture.get("stem", "lab_upload"))

    def strip(answer: dict[str, Any], stem: str) -> tuple[int, Any]:
        body = answer["body"]
        if isinstance(body, dict):
            body = {**body, "name": str(body.get("name")).replace(stem, "<name>")}
        return answer["status"], body

    for name, answer in observed["cases"].items():
        assert strip(answer, stems[0]) == strip(fixture["cases"][name], stems[1]), name


async def test_interrupt_sequence_and_queue_delete(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_interrupt(session, target.url, target.checkpoint)
    expected = run_fixture("interrupt")
    a, ref_a = _run(observed, "A_long"), _run(expected, "A_long")
    b, ref_b = _run(observed, "B_to_delete"), _run(expected, "B_to_delete")

    got, want = comparable(
        (observed["frames"], a["prompt_id"]), (expected["frames"], ref_a["prompt_id"]), collapse_progress=True
    )
    assert got == want
    assert got[-2:] == ["execution_interrupted 5 KSampler", "executing null"]
    assert _history_shape(a["history"]) == _history_shape(ref_a["history"])
    for record, run in ((observed, b), (expected, ref_b)):
        assert prompt_messages(record["frames"], run["prompt_id"]) == []
        assert run["history"] == {}
        assert run["prompt_id"] in [item[1] for item in record["queue_before_delete"]["queue_pending"]]
        assert run["prompt_id"] not in [item[1] for item in record["queue_after_delete"]["queue_pending"]]


async def test_cached_rerun_sequence(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_cached_rerun(session, target.url, target.checkpoint)
    expected = run_fixture("cached_rerun")

    for label in ("first", "identical_rerun", "seed_changed"):
        run, ref = _run(observed, label), _run(expected, label)
        got, want = comparable((observed["frames"], run["prompt_id"]), (expected["frames"], ref["prompt_id"]))
        assert got == want, label
    rerun = _run(observed, "identical_rerun")
    assert cached_nodes(observed["frames"], rerun["prompt_id"]) == set(rerun["graph"])
    assert rerun["history"]["outputs"] == _run(observed, "first")["history"]["outputs"]


async def test_execution_error_sequence(target: Target, session: aiohttp.ClientSession) -> None:
    corrupt = [name for name in target.loras if "corrupt" in name]
    if not corrupt:
        pytest.skip(f"{target.name} offers no LoRA named *corrupt*: the execution-error case did NOT run there")
    observed = await cases.record_exec_error(session, target.url, target.checkpoint, corrupt[0])
    expected = run_fixture("exec_error")
    run, ref = observed["runs"][0], expected["runs"][0]

    got, want = comparable((observed["frames"], run["prompt_id"]), (expected["frames"], ref["prompt_id"]))
    assert got == want
    assert message_keys(observed["frames"], run["prompt_id"]) == message_keys(expected["frames"], ref["prompt_id"])
    error = dict(prompt_messages(observed["frames"], run["prompt_id"]))["execution_error"]
    ref_error = dict(prompt_messages(expected["frames"], ref["prompt_id"]))["execution_error"]
    assert error["exception_type"] == ref_error["exception_type"]
    assert _history_shape(run["history"]) == _history_shape(ref["history"])


async def test_execution_error_bad_image(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_bad_image(session, target.url)
    expected = run_fixture("bad_image")
    run, ref = observed["runs"][0], expected["runs"][0]

    got, want = comparable((observed["frames"], run["prompt_id"]), (expected["frames"], ref["prompt_id"]))
    assert got == want
    assert got[-2:] == ["execution_error 1 LoadImage", "executing null"]
    assert message_keys(observed["frames"], run["prompt_id"]) == message_keys(expected["frames"], ref["prompt_id"])
    error = dict(prompt_messages(observed["frames"], run["prompt_id"]))["execution_error"]
    assert error["exception_type"] == "PIL.UnidentifiedImageError"
    assert _history_shape(run["history"]) == _history_shape(ref["history"])


async def test_websocket_routing(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_routing(session, target.url, target.checkpoint)
    facts = routing_facts(observed)

    assert facts == routing_facts(run_fixture("routing"))
    assert facts["other_client_sees_first"] == []
    assert facts["submitter_text_after_takeover"] == 0


async def test_server_answers(target: Target, session: aiohttp.ClientSession) -> None:
    observed = await cases.record_server(session, target.url)
    server = FIXTURES / "server"

    assert shape(observed["system_stats"]) == shape(read_json(server / "system_stats.json"))
    assert observed["features"] == read_json(server / "features.json")
    assert observed["models"]["folders"] == read_json(server / "models.json")["folders"]


async def test_index_page(target: Target, session: aiohttp.ClientSession) -> None:
    """``GET /`` (the frontend's page) answers: wrappers such as comfyui-api probe it for liveness."""
    async with session.get(f"{target.url}/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "<html" in (await response.text()).lower()


#: The model-switch case's stand-in runs slower than the module's, so that a LoRA-set switch takes tens of
#: milliseconds there; with the switch recording's own run times (the proportion of runs and switches recorded).
SWITCH_STANDIN = StandinOptions(time_scale=0.3, warm_timings=True, previews=False)
#: Reruns that vary by more than this share of their median (median absolute deviation) are too noisy to time a
#: switch against: another load on the machine, not the server.
NOISY = 0.25


@pytest.mark.slow
async def test_a_model_switch_costs_more_than_a_rerun(target: Target, session: aiohttp.ClientSession) -> None:
    """A checkpoint switch and a LoRA-set switch each take measurably longer than a rerun of the model just
    loaded: more than the reruns vary among themselves (their median absolute deviation) and over 10 ms; where
    the reruns themselves vary by more than a quarter (a busy machine), the case says so and does not judge.
    The stand-in's switches, measured the same way, are the recorded figures (it charges them)."""
    loras = cases.usable_loras(list(target.loras))
    if len(loras) < 2:
        pytest.skip(f"{target.name} offers fewer than two LoRAs that load: the model-switch case did NOT run there")
    async with contextlib.AsyncExitStack() as stack:
        url = target.url
        if target.name == "standin":
            url = (await stack.enter_async_context(StandinComfyUI(SWITCH_STANDIN))).url
        observed = await cases.record_model_loads(session, url, [target.checkpoint], (loras[0], loras[1]), rounds=5)
    extras, reruns = switch_extras(observed), rerun_seconds(observed)
    if len(reruns) < 2 or not all(extras[label] for label in SWITCH_LABELS):
        pytest.skip(f"{target.name}: other clients' prompts came between ours; the model-switch case did NOT run")
    typical = statistics.median(reruns)
    spread = statistics.median(abs(r - typical) for r in reruns)
    if spread > NOISY * typical:
        pytest.skip(
            f"{target.name}: the reruns varied too much ({spread:.3f} s around {typical:.3f} s: a busy machine) "
            "to measure a switch; the model-switch case did NOT run"
        )

    for label in SWITCH_LABELS:
        assert statistics.median(extras[label]) > max(0.01, spread), (label, extras[label], reruns)
    if target.name == "standin":
        costs = recorded().load_costs
        charged = {"checkpoint_switch": costs.checkpoint_s, "lora_switch": costs.lora_s}
        for label in SWITCH_LABELS:
            seen = statistics.median(extras[label]) / SWITCH_STANDIN.time_scale
            assert seen == pytest.approx(charged[label], rel=0.25), (label, seen, charged[label])


async def test_boundary_runs_prompts(target: Target, session: aiohttp.ClientSession) -> None:
    """Our own client, websocket and run code (what the service uses) against the target."""
    client = ComfyClient(target.url, session, f"atelier-contract-run-{uuid.uuid4().hex[:8]}")
    connection = ComfyConnection(target.url, session, client.client_id)
    connection.start()
    events: list[Event] = []
    first_progress = asyncio.Event()

    async def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, Progress):
            first_progress.set()

    try:
        assert await connection.wait_connected(10.0)
        done = await run_prompt(client, connection, cases.txt2img(target.checkpoint), str(uuid.uuid4()), on_event)
        assert isinstance(done, RunSucceeded)
        assert done.execution_ms is not None
        # what the run's messages told equals what history keeps; ComfyUI writes the entry only after it sent
        # execution_success (where the run ends), so it may not be there yet
        entry = await cases.wait_history(session, target.url, done.prompt_id)
        assert done == result_from_history(done.prompt_id, entry, backend=client.base_url)
        assert (await client.view(done.images[0].filename, done.images[0].subfolder)).startswith(b"\x89PNG")
        progress = [e for e in events if isinstance(e, Progress)]
        assert progress[-1].step == progress[-1].total
        assert progress[-1].node == "5"

        first_progress.clear()
        long_run = PromptRun(
            client, connection, cases.txt2img(target.checkpoint, steps=200), str(uuid.uuid4()), on_event
        )
        task = asyncio.create_task(long_run.run())
        await first_progress.wait()
        await long_run.cancel()
        stopped = await task
        assert isinstance(stopped, RunInterrupted)
        assert (stopped.node_type, stopped.before_start) == ("KSampler", False)

        bad = cases.txt2img(target.checkpoint)
        bad["5"]["inputs"]["steps"] = 0
        with pytest.raises(PromptRejected) as rejected:
            await run_prompt(client, connection, bad, str(uuid.uuid4()))
        assert rejected.value.node_errors["5"]["errors"][0]["type"] == "value_smaller_than_min"
    finally:
        await connection.close()
