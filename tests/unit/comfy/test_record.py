# SPDX-License-Identifier: Apache-2.0
"""A prompt's result from its websocket messages equals the one from its /history entry, for every run
recorded from the real ComfyUI; a broken or unfinished record gives none. Its success heard from its output
nodes' ``executed`` holds what the history says, and no recorded error or interrupt came after them."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.comfy.events import RunFailed, RunInterrupted, RunSucceeded
from orchestrator.comfy.history import result_from_history
from orchestrator.comfy.protocol import WsMessage
from orchestrator.comfy.record import SocketRecord
from tests.standin.comfyui.recordings import FIXTURES, read_json, run_fixture

CASES = ["txt2img", "exec_error", "interrupt", "cached_rerun", "lora", "preview_metadata", "preview_legacy"]


OBJECT_INFO = read_json(FIXTURES / "object_info.json")


def _output_nodes(graph: dict[str, Any]) -> list[str]:
    """The graph's output nodes, as the recording server's /object_info marks them."""
    return [node_id for node_id, node in graph.items() if OBJECT_INFO[node["class_type"]]["output_node"]]


def _recorded_runs() -> list[tuple[str, str, list[WsMessage], dict[str, Any]]]:
    """(case/label, prompt id, its text frames, its history entry); the cached-rerun case kept only each
    entry's ``outputs`` (its ``status.messages`` are then the frames themselves, as in every other entry)."""
    runs = []
    for case in CASES:
        fixture = run_fixture(case)
        for run in fixture["runs"]:
            messages = [
                WsMessage(frame["msg"]["type"], frame["msg"]["data"])
                for frame in fixture["frames"]
                if frame["kind"] == "text" and frame["msg"]["data"].get("prompt_id") == run["prompt_id"]
            ]
            entry = run.get("history") or (
                {"outputs": run["outputs"], "status": {"messages": [[m.type, m.data] for m in messages]}}
                if run.get("outputs") is not None
                else None
            )
            if entry:  # none: deleted before it ran, ComfyUI never sent anything for it
                runs.append((f"{case}/{run['label']}", run["prompt_id"], messages, entry))
    return runs


RUNS = _recorded_runs()


def _record(messages: list[WsMessage]) -> SocketRecord:
    record = SocketRecord()
    for message in messages:
        record.add(message)
    return record


@pytest.mark.parametrize(("prompt_id", "messages", "entry"), [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_socket_result_equals_history_result(prompt_id: str, messages: list[WsMessage], entry: dict) -> None:
    heard = _record(messages).result(prompt_id, backend="http://b")

    assert heard is not None
    assert heard == result_from_history(prompt_id, entry, backend="http://b")


def test_the_recordings_cover_every_ending_and_cached_outputs() -> None:
    results = [_record(messages).result(pid) for _, pid, messages, _ in RUNS]
    assert {type(r) for r in results} == {RunSucceeded, RunFailed, RunInterrupted}
    cached = [r for r in results if isinstance(r, RunSucceeded) and "7" in r.cached_nodes]
    assert cached
    assert all(r.images for r in cached)  # a cached output node re-sends its executed: its images are known


def test_no_result_before_the_terminal_message_or_from_a_broken_record() -> None:
    _, prompt_id, messages, _ = next(r for r in RUNS if r[0] == "txt2img/txt2img")
    terminal = next(i for i, m in enumerate(messages) if m.type == "execution_success")

    assert _record(messages[:terminal]).result(prompt_id) is None
    broken = _record(messages)
    broken.broken()
    assert broken.result(prompt_id) is None
    assert _record([m for m in messages if m.type != "execution_start"]).result(prompt_id) is None
    assert SocketRecord(intact=False).result(prompt_id) is None


def _outputs_done_at(
    prompt_id: str, messages: list[WsMessage], output_nodes: list[str]
) -> tuple[int, RunSucceeded | None]:
    """The first message after which the record says the outputs are done, and what it says then."""
    record = SocketRecord()
    for index, message in enumerate(messages):
        record.add(message)
        if (done := record.outputs_done(prompt_id, output_nodes, backend="http://b")) is not None:
            return index, done
    return -1, None


@pytest.mark.parametrize(("prompt_id", "messages", "entry"), [r[1:] for r in RUNS], ids=[r[0] for r in RUNS])
def test_outputs_done_is_the_success_history_records(prompt_id: str, messages: list[WsMessage], entry: dict) -> None:
    [graph] = [run["graph"] for case in CASES for run in run_fixture(case)["runs"] if run["prompt_id"] == prompt_id]
    output_nodes = _output_nodes(graph)
    at, done = _outputs_done_at(prompt_id, messages, output_nodes)
    final = result_from_history(prompt_id, entry, backend="http://b")

    if not isinstance(final, RunSucceeded):
        assert at == -1  # an error or an interrupt came before every output node ran
        return
    assert output_nodes
    assert done is not None
    assert messages[at].type == "executed"  # the last output node's, before ComfyUI's terminal message
    assert any(m.type == "execution_success" for m in messages[at + 1 :])
    assert (done.images, done.outputs, done.cached_nodes, done.backend) == (
        final.images,
        final.outputs,
        final.cached_nodes,
        final.backend,
    )
    assert done.execution_ms is not None
    assert done.execution_ms >= 0


def test_outputs_are_not_done_early_from_a_broken_record_or_without_every_output_node() -> None:
    _, prompt_id, messages, _ = next(r for r in RUNS if r[0] == "txt2img/txt2img")
    last_output = max(i for i, m in enumerate(messages) if m.type == "executed")
    heard = messages[: last_output + 1]

    assert _record(heard).outputs_done(prompt_id, ["7"]) is not None
    assert _record(heard).outputs_done(prompt_id, ["7", "9"]) is None  # another output node has not run
    assert _record(heard).outputs_done(prompt_id, []) is None  # output nodes unknown: wait for the end
    assert _record(heard[:-1]).outputs_done(prompt_id, ["7"]) is None
    broken = _record(heard)
    broken.broken()
    assert broken.outputs_done(prompt_id, ["7"]) is None
    assert _record([m for m in heard if m.type != "execution_start"]).outputs_done(prompt_id, ["7"]) is None
    assert _record(messages).outputs_done(prompt_id, ["7"]) is None  # ended: the terminal message says how
