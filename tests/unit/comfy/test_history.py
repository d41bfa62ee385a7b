# SPDX-License-Identifier: Apache-2.0
"""Results from recorded /history entries."""

from __future__ import annotations

from orchestrator.comfy.events import OutputImage, RunFailed, RunInterrupted, RunSucceeded
from orchestrator.comfy.history import result_from_history
from tests.standin.comfyui.recordings import run_fixture


def _entry(case: str, label: str) -> tuple[str, dict]:
    run = next(r for r in run_fixture(case)["runs"] if r["label"] == label)
    return run["prompt_id"], run["history"]


def test_success_with_images_and_comfyui_execution_time() -> None:
    pid, entry = _entry("txt2img", "txt2img")
    result = result_from_history(pid, entry, backend="http://b")
    assert isinstance(result, RunSucceeded)
    assert result.images == (OutputImage("7", "lab_txt2img_00001_.png", "", "output"),)
    messages = dict(entry["status"]["messages"])
    assert result.execution_ms == messages["execution_success"]["timestamp"] - messages["execution_start"]["timestamp"]
    assert (result.cached_nodes, result.backend) == ((), "http://b")


def test_execution_error() -> None:
    pid, entry = _entry("exec_error", "corrupt_lora")
    result = result_from_history(pid, entry)
    assert isinstance(result, RunFailed)
    assert (result.node_id, result.node_type) == ("8", "LoraLoader")
    assert result.exception_type == "safetensors._safetensors_rust.SafetensorError"
    assert result.exception_message.startswith("Error while deserializing header")
    assert len(result.traceback) > 1
    assert result.execution_ms is not None


def test_interrupted() -> None:
    pid, entry = _entry("interrupt", "A_long")
    result = result_from_history(pid, entry)
    assert isinstance(result, RunInterrupted)
    assert (result.node_id, result.node_type, result.before_start) == ("5", "KSampler", False)
    assert result.execution_ms is not None
    assert result.execution_ms > 0


def test_error_status_without_messages_and_odd_outputs() -> None:
    failed = result_from_history("p", {"status": {"status_str": "error", "messages": []}, "outputs": {}})
    assert isinstance(failed, RunFailed)
    assert failed.exception_type == "unknown"
    odd = result_from_history("p", {"status": {"status_str": "success"}, "outputs": {"3": "x", "4": {"images": [{}]}}})
    assert isinstance(odd, RunSucceeded)
    assert odd.images == ()
    assert odd.execution_ms is None
