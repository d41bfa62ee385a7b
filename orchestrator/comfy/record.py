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
"""

from __future__ import annotations

from typing import Any

from orchestrator.comfy.events import RunResult
from orchestrator.comfy.history import result_from_messages
from orchestrator.comfy.protocol import TERMINAL_TYPES, WsMessage

_KEPT = frozenset({"execution_start", "execution_cached", *TERMINAL_TYPES})


class SocketRecord:
    """The messages of one prompt as they arrive; its result once the terminal one came on an unbroken socket."""

    __slots__ = ("_messages", "_outputs", "intact")

    def __init__(self, *, intact: bool = True) -> None:
        self._messages: dict[str, dict[str, Any]] = {}
        self._outputs: dict[str, Any] = {}
        #: False once a message may have been missed; the result must then come from ``/history``.
        self.intact = intact

    def add(self, message: WsMessage) -> bool:
        """Keep what the message says about the prompt's end; True for the terminal message."""
        if message.type == "executed":
            node, output = message.data.get("node"), message.data.get("output")
            if node is not None and isinstance(output, dict):
                self._outputs[str(node)] = output  # as in the history entry: one per node, the last one wins
            return False
        if message.type in _KEPT:
            self._messages[message.type] = message.data
        return message.type in TERMINAL_TYPES

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
