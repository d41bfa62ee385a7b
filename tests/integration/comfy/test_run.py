# SPDX-License-Identifier: Apache-2.0
"""Running prompts end to end against the stand-in over real HTTP and websockets."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from orchestrator.comfy import (
    BackendLost,
    Cached,
    ComfyClient,
    ComfyConnection,
    Event,
    Executing,
    Preview,
    Progress,
    PromptRejected,
    PromptRun,
    RunFailed,
    RunInterrupted,
    RunSucceeded,
    run_prompt,
)
from orchestrator.comfy.history import result_from_history
from orchestrator.comfy.protocol import WsMessage
from orchestrator.comfy.run import RunState
from tests.integration.comfy.conftest import FAST, corrupt_lora_graph, txt2img
from tests.standin.comfyui import StandinComfyUI


class Recorder:
    """Collects the normalised events of a run."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


async def test_txt2img_succeeds_with_outputs_progress_and_previews(
    client: ComfyClient, connection: ComfyConnection
) -> None:
    events = Recorder()
    result = await run_prompt(client, connection, txt2img(steps=6), str(uuid.uuid4()), events, FAST)

    assert isinstance(result, RunSucceeded)
    assert [(i.node, i.type) for i in result.images] == [("7", "output")]
    assert result.images[0].filename.startswith("atelier_it_")
    assert result.execution_ms is not None
    assert result.execution_ms >= 0
    assert (await client.view(result.images[0].filename)).startswith(b"\x89PNG")
    assert events.of(Cached) == [Cached(())]
    assert [(e.node, e.class_type) for e in events.of(Executing)] == [
        ("1", "CheckpointLoaderSimple"),
        ("4", "EmptyLatentImage"),
        ("3", "CLIPTextEncode"),
        ("2", "CLIPTextEncode"),
        ("5", "KSampler"),
        ("6", "VAEDecode"),
        ("7", "SaveImage"),
    ]
    progress = events.of(Progress)
    assert [(p.step, p.total, p.node) for p in progress] == [(s, 6, "5") for s in range(1, 7)]
    assert progress[-1].percent == 100.0
    assert progress[-1].eta_s == 0.0
    assert all(p.it_per_s is not None and p.it_per_s > 0 for p in progress)
    previews = events.of(Preview)
    assert len(previews) == 6
    assert {p.mime for p in previews} == {"image/png"}
    assert previews[0].node == "5"
    assert previews[0].image.startswith(b"\x89PNG")


async def test_a_run_heard_in_full_ends_on_its_messages_without_asking_history(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    assert await connection.wait_connected(5.0)
    await run_prompt(client, connection, txt2img(seed=3), str(uuid.uuid4()), None, FAST)  # the socket is heard
    standin.requests.clear()
    prompt_id = str(uuid.uuid4())
    result = await run_prompt(client, connection, txt2img(seed=4), prompt_id, None, FAST)
    asked = dict(standin.requests)

    assert isinstance(result, RunSucceeded)
    assert asked == {"POST /prompt": 1}
    assert result == result_from_history(prompt_id, await client.history(prompt_id) or {}, backend=client.base_url)


async def test_a_run_given_its_output_nodes_ends_once_they_ran_while_comfyui_still_ends_the_prompt(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    assert await connection.wait_connected(5.0)
    await run_prompt(client, connection, txt2img(seed=3), str(uuid.uuid4()), None, FAST)  # the socket is heard
    prompt_id = str(uuid.uuid4())
    end = connection.subscribe(prompt_id)
    standin.hold_end()
    try:
        run = PromptRun(client, connection, txt2img(seed=5), prompt_id, None, FAST, output_nodes=["7"])
        result = await asyncio.wait_for(run.run(), 10)
        unfinished = await client.history(prompt_id)
    finally:
        standin.release_end()
    while not isinstance(message := await end.get(10), WsMessage) or not message.is_prompt_done:
        assert message is not None
    connection.unsubscribe(end)
    entry = await client.history(prompt_id)

    assert isinstance(result, RunSucceeded)
    assert unfinished is None  # ComfyUI had not ended the prompt when the run did
    assert run.state is RunState.DONE
    assert entry is not None
    assert result == replace(
        result_from_history(prompt_id, entry, backend=client.base_url), execution_ms=result.execution_ms
    )
    assert result.execution_ms is not None


async def test_a_run_given_its_output_nodes_ends_at_an_error_before_them(
    client: ComfyClient, connection: ComfyConnection
) -> None:
    run = PromptRun(client, connection, corrupt_lora_graph(), str(uuid.uuid4()), None, FAST, output_nodes=["7"])

    result = await run.run()

    assert isinstance(result, RunFailed)
    assert result.node_id == "8"


async def test_cached_rerun_runs_nothing_and_reuses_the_outputs(
    client: ComfyClient, connection: ComfyConnection
) -> None:
    first = await run_prompt(client, connection, txt2img(seed=7), str(uuid.uuid4()), None, FAST)
    events = Recorder()
    again = await run_prompt(client, connection, txt2img(seed=7), str(uuid.uuid4()), events, FAST)

    assert isinstance(first, RunSucceeded)
    assert isinstance(again, RunSucceeded)
    assert again.images == first.images
    assert set(again.cached_nodes) == {"1", "2", "3", "4", "5", "6", "7"}
    assert events.of(Executing) == []
    assert events.of(Progress) == []
    assert [set(e.nodes) for e in events.of(Cached)] == [set(again.cached_nodes)]


async def test_execution_error_fails_with_node_and_exception(client: ComfyClient, connection: ComfyConnection) -> None:
    result = await run_prompt(client, connection, corrupt_lora_graph(), str(uuid.uuid4()), None, FAST)

    assert isinstance(result, RunFailed)
    assert (result.node_id, result.node_type) == ("8", "LoraLoader")
    assert result.exception_type == "safetensors._safetensors_rust.SafetensorError"
    assert "deserializing header" in result.exception_message
    assert result.traceback


async def test_a_run_says_when_comfyui_queued_its_prompt(client: ComfyClient, connection: ComfyConnection) -> None:
    events = Recorder()
    said: list[tuple[RunState, int]] = []
    run = PromptRun(
        client, connection, txt2img(seed=5), str(uuid.uuid4()), events, FAST,
        on_submitted=lambda: said.append((run.state, len(events.events))),
    )  # fmt: skip
    assert isinstance(await run.run(), RunSucceeded)
    assert said == [(RunState.PENDING, 0)]  # once, queued, before any of its messages


async def test_rejected_graph_raises_with_node_errors(client: ComfyClient, connection: ComfyConnection) -> None:
    graph = txt2img()
    graph["1"]["inputs"]["ckpt_name"] = "missing.safetensors"
    said: list[str] = []
    run = PromptRun(client, connection, graph, str(uuid.uuid4()), None, FAST, on_submitted=lambda: said.append("x"))
    with pytest.raises(PromptRejected) as caught:
        await run.run()
    assert said == []  # refused: never queued
    assert caught.value.error_type == "prompt_outputs_failed_validation"
    assert caught.value.node_errors["1"]["errors"][0]["type"] == "value_not_in_list"
    assert not caught.value.retryable


async def test_cancel_while_running_interrupts(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    standin.hold(step=1)
    run = PromptRun(client, connection, txt2img(steps=30), str(uuid.uuid4()), None, FAST)
    task = asyncio.create_task(run.run())
    await standin.wait_held()
    await run.cancel()
    result = await task

    assert isinstance(result, RunInterrupted)
    assert (result.node_id, result.node_type, result.before_start) == ("5", "KSampler", False)


async def test_cancel_while_pending_deletes_it_from_the_queue(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    standin.hold(step=1)
    first = PromptRun(client, connection, txt2img(seed=1), str(uuid.uuid4()), None, FAST)
    first_task = asyncio.create_task(first.run())
    await standin.wait_held()
    second = PromptRun(client, connection, txt2img(seed=2), str(uuid.uuid4()), None, FAST)
    second_task = asyncio.create_task(second.run())
    await second.submitted.wait()
    assert second.prompt_id in (await client.queue()).pending

    await second.cancel()
    cancelled = await second_task
    queue = await client.queue()
    standin.release()
    finished = await first_task

    assert isinstance(cancelled, RunInterrupted)
    assert cancelled.before_start
    assert second.prompt_id not in queue
    assert await client.history(second.prompt_id) is None
    assert isinstance(finished, RunSucceeded)


async def test_websocket_lost_mid_run_completion_found_via_history(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    standin.hold(step=1)
    run = PromptRun(client, connection, txt2img(), str(uuid.uuid4()), None, FAST)
    task = asyncio.create_task(run.run())
    await standin.wait_held()
    await standin.drop_sockets(block=True)
    standin.release()
    standin.requests.clear()
    result = await task

    assert isinstance(result, RunSucceeded)
    assert result.images
    assert standin.requests["GET /history/{prompt_id}"] >= 1  # the socket's record was broken: history tells
    assert not connection.connected
    standin.allow_sockets()
    assert await connection.wait_connected(5.0)


async def test_websocket_reconnect_resumes_events(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    standin.hold(step=2)
    events = Recorder()
    run = PromptRun(client, connection, txt2img(steps=4), str(uuid.uuid4()), events, FAST)
    task = asyncio.create_task(run.run())
    await standin.wait_held()
    await standin.drop_sockets()
    assert await connection.wait_connected(5.0)
    standin.release()
    result = await task

    assert isinstance(result, RunSucceeded)
    assert connection.connects == 2
    steps = [p.step for p in events.of(Progress)]
    assert steps[:2] == [1, 2]
    assert steps[-1] == 4
    assert [e.node for e in events.of(Executing)].count("5") == 1  # the replay after reconnecting is no news


async def test_backend_dying_mid_run_raises_backend_lost(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    standin.hold(step=1)
    run = PromptRun(client, connection, txt2img(), str(uuid.uuid4()), None, FAST)
    task = asyncio.create_task(run.run())
    await standin.wait_held()
    await standin.die()

    with pytest.raises(BackendLost) as caught:
        await task
    assert caught.value.retryable


async def test_backend_restarted_mid_run_forgets_the_prompt(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection
) -> None:
    standin.hold(step=1)
    run = PromptRun(client, connection, txt2img(), str(uuid.uuid4()), None, FAST)
    task = asyncio.create_task(run.run())
    await standin.wait_held()
    await standin.die()
    await standin.revive()

    with pytest.raises(BackendLost, match="no longer knows"):
        await task


async def test_silent_socket_while_running_is_replaced(
    standin: StandinComfyUI, client: ComfyClient, connection: ComfyConnection, client_id: str
) -> None:
    reconnected = asyncio.Event()
    connection.on_state_change = lambda conn: reconnected.set() if conn.connects == 2 and conn.connected else None
    events = Recorder()
    standin.hold(step=1)
    run = PromptRun(client, connection, txt2img(steps=3), str(uuid.uuid4()), events, replace(FAST, watchdog_s=0.2))
    task = asyncio.create_task(run.run())
    await standin.wait_held()
    standin.orphan_socket(client_id)  # open, but ComfyUI no longer sends to it
    await reconnected.wait()  # the watchdog saw it running and silent, and reconnected
    standin.release()
    result = await task

    assert isinstance(result, RunSucceeded)
    assert [p.step for p in events.of(Progress)] == [1, 2, 3]
