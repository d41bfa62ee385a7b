# SPDX-License-Identifier: Apache-2.0
"""One prompt inside the stand-in: node by node messages, images, failures and its history entry."""

from __future__ import annotations

import secrets
import time
import zlib
from typing import TYPE_CHECKING, Any

from tests.standin.comfyui.files import png_bytes, textured_png_bytes
from tests.standin.comfyui.loading import MODEL_LOADERS, load_needed, marker_value, model_key
from tests.standin.comfyui.validation import is_link

if TYPE_CHECKING:
    from tests.standin.comfyui.executor import Executor, Task

_LORA_LOADERS = {"LoraLoader", "LoraLoaderModelOnly"}
_PROGRESS_MIN_INTERVAL_S = 0.1


def now_ms() -> int:
    """ComfyUI's message timestamps: integer milliseconds since the epoch."""
    return int(time.time() * 1000)


class Interrupted(Exception):
    """``/interrupt`` reached the running prompt at ``node_id``."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class NodeFailure(Exception):
    """A node raised (a corrupt LoRA, or a class the test told to fail)."""

    def __init__(self, node_id: str, exception_type: str, message: str, traceback: list[str]) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.exception_type = exception_type
        self.message = message
        self.traceback = traceback


class PromptRun:
    """The state of one executing prompt."""

    def __init__(self, executor: Executor, task: Task) -> None:
        self.ex = executor
        self.task = task
        self.executed: list[str] = []
        self.outputs: dict[str, Any] = {}
        self.states: dict[str, dict[str, Any]] = {}

    def class_of(self, node_id: str) -> str:
        """Class of a node of this prompt."""
        return str(self.task.prompt[node_id]["class_type"])

    def is_output(self, node_id: str) -> bool:
        """Whether the node is an output node."""
        return bool(self.ex.object_info.get(self.class_of(node_id), {}).get("output_node"))

    async def _state(self, node_id: str, value: float, maximum: float, state: str) -> None:
        pid = self.task.prompt_id
        self.states[node_id] = {
            "value": value,
            "max": maximum,
            "state": state,
            "node_id": node_id,
            "prompt_id": pid,
            "display_node_id": node_id,
            "parent_node_id": None,
            "real_node_id": node_id,
        }
        data = {"prompt_id": pid, "nodes": {k: dict(v) for k, v in self.states.items()}}
        await self.ex.hub.send_json("progress_state", data, self.task.client_id)

    async def replay_cached(self, node_id: str, ui: dict[str, Any] | None) -> None:
        """A cached output node only re-sends its ``executed``."""
        if ui:
            self.outputs[node_id] = ui
            await self.ex.send_exec(self.task, "executed", self._executed(node_id, ui))
        await self._state(node_id, 1, 1, "finished")

    def _executed(self, node_id: str, ui: dict[str, Any]) -> dict[str, Any]:
        return {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": self.task.prompt_id}

    async def run_node(self, node_id: str) -> dict[str, Any] | None:
        """Execute one node; its UI output (output nodes) for the cache."""
        if self.ex.interrupted.is_set():
            raise Interrupted(node_id)
        self.ex.last_node_id = node_id
        await self._state(node_id, 0.0, 1.0, "running")
        await self.ex.send_exec(
            self.task, "executing", {"node": node_id, "display_node": node_id, "prompt_id": self.task.prompt_id}
        )
        class_type = self.class_of(node_id)
        failure = self._failure(node_id, class_type)
        if failure is not None:
            raise failure
        steps = self._steps(node_id, class_type)
        if steps:
            await self._load_models()
            await self._sample(node_id, class_type, steps)
        elif class_type not in MODEL_LOADERS:  # a loader's time is part of the switch charged before sampling
            await self.ex.sleep(self.ex.rec.seconds_for(class_type))
        ui = await self._save(node_id, class_type) if self.is_output(node_id) else None
        if ui:
            self.outputs[node_id] = ui
            await self.ex.send_exec(self.task, "executed", self._executed(node_id, ui))
        self.executed.append(node_id)
        await self._state(node_id, steps or 1.0, steps or 1.0, "finished")
        return ui

    def _steps(self, node_id: str, class_type: str) -> int:
        if class_type not in self.ex.rec.step_seconds and "sampler" not in class_type.lower():
            return 0
        steps = self.value_of(self.task.prompt[node_id].get("inputs", {}).get("steps"))
        return int(steps) if isinstance(steps, int | float) and steps > 0 else 0

    async def _load_models(self) -> None:
        """Before the first step: switch to this prompt's checkpoint and LoRA set if they are not the loaded ones
        (see :mod:`tests.standin.comfyui.loading`)."""
        wanted = model_key(self.task.prompt)
        load = load_needed(self.ex.loaded, wanted, self.ex.rec.load_costs)
        if load is not None:
            self.ex.loads.append((self.task.prompt_id, load.kind))
            await self.ex.sleep(load.recorded_s)
        if wanted is not None:
            self.ex.loaded = wanted

    async def _sample(self, node_id: str, class_type: str, steps: int) -> None:
        step_s = self.ex.rec.step_seconds.get(class_type, max(self.ex.rec.step_seconds.values(), default=1.0))
        sid, pid = self.task.client_id, self.task.prompt_id
        since_sent = 0.0  # recorded-time seconds since the last progress frame
        for step in range(1, steps + 1):
            await self.ex.sleep(step_s)
            since_sent += step_s
            if self.ex.interrupted.is_set():
                raise Interrupted(node_id)
            await self._state(node_id, step, steps, "running")
            # ComfyUI's ProgressBar: first, last and previewed steps always, others at most every 100 ms.
            if self.ex.previews or step in (1, steps) or since_sent >= _PROGRESS_MIN_INTERVAL_S:
                since_sent = 0.0
                progress = {"value": step, "max": steps, "prompt_id": pid, "node": node_id}
                await self.ex.hub.send_json("progress", progress, sid)
            if self.ex.previews:
                meta = {
                    "node_id": node_id,
                    "prompt_id": pid,
                    "display_node_id": node_id,
                    "parent_node_id": None,
                    "real_node_id": node_id,
                }
                await self.ex.hub.send_preview(self.ex.preview_png(self.task, step), "image/png", meta, sid)
            await self.ex.gate.at_step(step, self.ex.interrupted)
            if self.ex.interrupted.is_set():
                raise Interrupted(node_id)

    def _failure(self, node_id: str, class_type: str) -> NodeFailure | None:
        inputs = self.task.prompt[node_id].get("inputs") or {}
        if class_type in _LORA_LOADERS and "corrupt" in str(inputs.get("lora_name", "")):
            return self._recorded_failure(
                node_id,
                "lora",
                "safetensors._safetensors_rust.SafetensorError",
                "Error while deserializing header: invalid JSON in header",
            )
        if class_type == "LoadImage" and not self.ex.files.input_is_image(str(inputs.get("image", ""))):
            failure = self._recorded_failure(node_id, "image", "PIL.UnidentifiedImageError", "")
            failure.message = f"cannot identify image file '{self.ex.files.input_path(str(inputs['image']))}'\n"
            return failure
        if class_type in self.ex.fail_classes:
            return NodeFailure(
                node_id,
                "RuntimeError",
                self.ex.fail_classes[class_type] + "\n",
                [f'  File "<standin>/execution.py", line 1, in {class_type}\n'],
            )
        return None

    def _recorded_failure(self, node_id: str, kind: str, exception_type: str, message: str) -> NodeFailure:
        template = self.ex.rec.error_templates.get(kind, {})
        return NodeFailure(
            node_id,
            str(template.get("exception_type", exception_type)),
            str(template.get("exception_message", message + "\n")),
            list(template.get("traceback", [f'  File "<standin>/execution.py", line 1, in {kind}\n'])),
        )

    def value_of(self, value: Any) -> Any:
        """A literal input value, or the value an Atelier parameter marker passes on through a link."""
        return marker_value(self.task.prompt, value)

    def _image_spec(self) -> tuple[int, int, int]:
        for node in self.task.prompt.values():
            if str(node.get("class_type", "")).startswith("Empty") and "width" in (node.get("inputs") or {}):
                inputs = {k: self.value_of(v) for k, v in (node.get("inputs") or {}).items()}
                return int(inputs.get("width", 64)), int(inputs.get("height", 64)), int(inputs.get("batch_size", 1))
        return 64, 64, 1

    async def _save(self, node_id: str, class_type: str) -> dict[str, Any] | None:
        if class_type not in ("SaveImage", "PreviewImage"):
            return None
        width, height, batch = self._image_spec()
        inputs = self.task.prompt[node_id].get("inputs") or {}
        kind = "output" if class_type == "SaveImage" else "temp"
        prefix = (
            str(inputs.get("filename_prefix", "ComfyUI"))
            if kind == "output"
            else "ComfyUI_temp_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5))
        )
        if self.ex.textured_images:
            png = textured_png_bytes(width, height, self.task.prompt_id.encode())
        else:
            shade = zlib.crc32(self.task.prompt_id.encode()) & 0xFFFFFF
            png = png_bytes(width, height, (shade >> 16, (shade >> 8) & 0xFF, shade & 0xFF))
        images = []
        for _ in range(max(batch, 1)):
            filename, subfolder = self.ex.files.save_image(kind, prefix, png)
            images.append({"filename": filename, "subfolder": subfolder, "type": kind})
        return {"images": images}

    def error_data(self, failure: NodeFailure) -> dict[str, Any]:
        """The ``execution_error`` payload."""
        inputs = self.task.prompt[failure.node_id].get("inputs") or {}
        return {
            "prompt_id": self.task.prompt_id,
            "node_id": failure.node_id,
            "node_type": self.class_of(failure.node_id),
            "executed": list(self.executed),
            "exception_message": failure.message,
            "exception_type": failure.exception_type,
            "traceback": failure.traceback,
            "current_inputs": {k: ["<object>"] if is_link(v) else [v] for k, v in inputs.items()},
            "current_outputs": list(self.task.prompt),
            "timestamp": now_ms(),
        }

    def history_entry(self, outcome: str) -> dict[str, Any]:
        """The ``/history/{id}`` entry once the prompt has ended."""
        meta = {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in self.outputs}
        return {
            "prompt": self.task.as_item(),
            "outputs": dict(self.outputs),
            "status": {"status_str": outcome, "completed": outcome == "success", "messages": self.task.messages},
            "meta": meta,
        }
