# SPDX-License-Identifier: Apache-2.0
"""Reading a ``/history/{prompt_id}`` entry: the final state, outputs and timing of a prompt.

ComfyUI writes the entry when the prompt leaves its queue, before it sends ``executing``
with node null, so a present entry is always final. ``status.messages`` repeats the
``execution_*`` messages with their millisecond ``timestamp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.comfy.events import OutputImage, RunFailed, RunInterrupted, RunResult, RunSucceeded


def status_messages(entry: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The entry's ``execution_*`` messages by type (the last one of each type wins)."""
    status = entry.get("status")
    if not isinstance(status, Mapping):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for item in status.get("messages") or ():
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], dict):
            found[str(item[0])] = item[1]
    return found


def execution_ms(messages: Mapping[str, Mapping[str, Any]], end_type: str) -> int | None:
    """ComfyUI's own execution time: ``execution_start`` to ``end_type``, in milliseconds."""
    start = messages.get("execution_start", {}).get("timestamp")
    end = messages.get(end_type, {}).get("timestamp")
    if isinstance(start, int | float) and isinstance(end, int | float):
        return int(end - start)
    return None


def output_images(outputs: Mapping[str, Any]) -> tuple[OutputImage, ...]:
    """Every image listed under an output node's ``images`` (node order as ComfyUI gives it)."""
    images: list[OutputImage] = []
    for node_id, node_output in outputs.items():
        if not isinstance(node_output, Mapping):
            continue
        for image in node_output.get("images") or ():
            if isinstance(image, Mapping) and "filename" in image:
                images.append(
                    OutputImage(
                        node=str(node_id),
                        filename=str(image["filename"]),
                        subfolder=str(image.get("subfolder", "")),
                        type=str(image.get("type", "output")),
                    )
                )
    return tuple(images)


def result_from_history(prompt_id: str, entry: Mapping[str, Any], *, backend: str | None = None) -> RunResult:
    """Turn a history entry into the prompt's result."""
    status = entry.get("status")
    status_str = status.get("status_str") if isinstance(status, Mapping) else None
    outputs = entry.get("outputs")
    outputs = dict(outputs) if isinstance(outputs, Mapping) else {}
    return result_from_messages(prompt_id, status_messages(entry), outputs, status_str=status_str, backend=backend)


def result_from_messages(
    prompt_id: str,
    messages: Mapping[str, Mapping[str, Any]],
    outputs: Mapping[str, Any],
    *,
    status_str: str | None = None,
    backend: str | None = None,
) -> RunResult:
    """The prompt's result from its ``execution_*`` messages (by type) and its output nodes' UI outputs: what a
    history entry holds, and what the prompt's own websocket messages carry (see :mod:`orchestrator.comfy.record`)."""
    if "execution_interrupted" in messages:
        data = messages["execution_interrupted"]
        return RunInterrupted(
            prompt_id,
            node_id=_opt_str(data.get("node_id")),
            node_type=_opt_str(data.get("node_type")),
            execution_ms=execution_ms(messages, "execution_interrupted"),
            backend=backend,
        )
    if "execution_error" in messages or status_str == "error":
        data = messages.get("execution_error", {})
        return RunFailed(
            prompt_id,
            node_id=_opt_str(data.get("node_id")),
            node_type=_opt_str(data.get("node_type")),
            exception_type=str(data.get("exception_type", "unknown")),
            exception_message=str(data.get("exception_message", "ComfyUI reported an error")).strip(),
            traceback=tuple(str(line) for line in data.get("traceback") or ()),
            execution_ms=execution_ms(messages, "execution_error"),
            backend=backend,
        )
    cached = messages.get("execution_cached", {}).get("nodes") or ()
    return RunSucceeded(
        prompt_id,
        images=output_images(outputs),
        outputs=dict(outputs),
        execution_ms=execution_ms(messages, "execution_success"),
        cached_nodes=tuple(str(n) for n in cached),
        backend=backend,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
