# SPDX-License-Identifier: Apache-2.0
"""How a prompt ended, from its own websocket messages: the facts ``/history`` keeps, one round trip sooner.

ComfyUI sends the submitting socket, for each prompt and in this order: ``execution_start``,
``execution_cached`` (the nodes it will not run), one ``executed`` per output node that ran *or was cached*
(with the node's UI output, e.g. its ``images``), then exactly one of ``execution_success``,
``execution_error`` (node, exception, traceback) or ``execution_interrupted`` (node), each with its
millisecond ``timestamp``. Only then does it write the history entry -- whose ``outputs`` are those same UI
outputs, and whose ``status.messages`` are those same ``execution_*`` messages -- and send ``executing`` with
node null (recorded from a real server: the project's ``tests/fixtures/comfyui/runs``;
``tests/unit/comfy/test_record.py`` compares the two for every recorded run).

So a run that heard every message of its prompt can end at the terminal message without asking ``/history``.
It can trust that only when the socket it heard them on was registered with ComfyUI before the prompt was
queued and never dropped or replaced meanwhile (ComfyUI replays nothing to a new socket): otherwise the record
is *broken* and the run asks ``/history`` as before.

It can end sooner still. ComfyUI runs only the graph's output nodes and what they depend on, and an output node
says ``executed`` once it has run and written its files; after the last one nothing is left to run, and ComfyUI
goes straight to ``execution_success``. An error is raised by a node, and an interrupt stops a node before or
while it runs; either way that node says no ``executed``, so neither can follow the last output's ``executed``
(nor did it in any recorded run). So once every output node of the graph has said ``executed`` on an unbroken
socket, the record gives the prompt's success (:meth:`SocketRecord.outputs_done`) while ComfyUI still writes its
history; the execution time of such a run is measured here, from hearing ``execution_start`` to hearing the last
``executed``. On the real ComfyUI 0.33.0 here (64 px, 4 steps) the job's end came ~0.3 ms sooner: the part of
Atelier's extra over a direct client after ``execution_success`` went from 2.37 to 2.10 ms (medians of seven A/B
runs of ``bench_generation_overhead``).

Some prompts still end at their terminal message. An output node with nothing to show (``SaveImageWebsocket``)
says no ``executed``. And for graphs where ComfyUI may still do something after the last output's ``executed``,
:meth:`~orchestrator.comfy.backend.Backend.output_nodes` names no output nodes: a graph with a node that has an
intermediate output (ComfyUI sends its cached UI just before ``execution_success``), or with a custom output node
(it may expand into more nodes after it said ``executed``).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from orchestrator.comfy.events import RunResult, RunSucceeded
from orchestrator.comfy.history import output_images, result_from_messages
from orchestrator.comfy.protocol import TERMINAL_TYPES, WsMessage

_KEPT = frozenset({"execution_start", "execution_cached", *TERMINAL_TYPES})


class SocketRecord:
    """The messages of one prompt as they arrive; its result once the terminal one came on an unbroken socket."""

    __slots__ = ("_last_output_at", "_messages", "_outputs", "_started_at", "intact")

    def __init__(self, *, intact: bool = True) -> None:
        self._messages: dict[str, dict[str, Any]] = {}
        self._outputs: dict[str, Any] = {}
        self._started_at: float | None = None  # time.monotonic() when execution_start came
        self._last_output_at: float | None = None  # ... and the latest executed
        #: False once a message may have been missed; the result must then come from ``/history``.
        self.intact = intact

    def add(self, message: WsMessage) -> bool:
        """Keep what the message says about the prompt's end; True for the terminal message."""
        if message.type == "executed":
            node, output = message.data.get("node"), message.data.get("output")
            if node is not None and isinstance(output, dict):
                self._outputs[str(node)] = output  # as in the history entry: one per node, the last one wins
                self._last_output_at = time.monotonic()
            return False
        if message.type == "execution_start":
            self._started_at = time.monotonic()
        if message.type in _KEPT:
            self._messages[message.type] = message.data
        return message.type in TERMINAL_TYPES

    def outputs_done(
        self, prompt_id: str, output_nodes: Collection[str], *, backend: str | None = None
    ) -> RunSucceeded | None:
        """The prompt's success once every one of the graph's ``output_nodes`` said ``executed`` (see above),
        before ComfyUI's terminal message; None until then, or when the record cannot be trusted."""
        if not output_nodes or not self.intact or self._started_at is None or self._last_output_at is None:
            return None
        if any(kind in self._messages for kind in TERMINAL_TYPES) or not all(n in self._outputs for n in output_nodes):
            return None
        cached = self._messages.get("execution_cached", {}).get("nodes") or ()
        return RunSucceeded(
            prompt_id,
            images=output_images(self._outputs),
            outputs=dict(self._outputs),
            execution_ms=round((self._last_output_at - self._started_at) * 1000),
            cached_nodes=tuple(str(n) for n in cached),
            backend=backend,
        )

    def broken(self) -> None:
        """A message may have been missed (the socket was lost, replaced or not yet registered)."""
        self.intact = False

    def result(self, prompt_id: str, *, backend: str | None = None) -> RunResult | None:
        """The prompt's result, or None when the record cannot be trusted or has no terminal message yet."""
        if not self.intact or "execution_start" not in self._messages:
            return None
        if not any(kind in self._messages for kind in TERMINAL_TYPES):
            return None
        return result_from_messages(prompt_id, self._messages, self._outputs, backend=backend)
