"""The progress protocol between the sd-scripts launcher and the supervisor.

The launcher runs inside sd-scripts' own Python, so this module uses the standard library only.
It writes one JSON object per line to a pipe whose file descriptor the supervisor hands it
(``--events-fd``). Every record has ``type`` (one of ``RECORD_TYPES``) and ``t`` (wall-clock
seconds since the epoch, float). The other keys per type:

``run_started``     script, total_steps, num_epochs, resume_step (int, 0 when not resuming), pid
``step``            step (1-based global step), total_steps, epoch (1-based), loss (this step's),
                    avg_loss (sd-scripts' running average), lr (first param group's learning rate)
``checkpoint_saved`` step, path (an intermediate LoRA .safetensors)
``state_saved``     step, path (a ``--save_state`` directory, usable with ``--resume``)
``sample_saved``    step, path (a sample image), prompt (may be empty)
``model_saved``     path (the final LoRA .safetensors)
``run_finished``    ok (bool; false when the training function raised)
``error``           exc_type, message (an exception escaped the training script)

Rates and ETAs are the supervisor's business: it derives them from ``t``.
"""

from __future__ import annotations

import json
import time
from typing import Any

PROTOCOL_VERSION = 1

RECORD_TYPES = frozenset(
    {
        "run_started",
        "step",
        "checkpoint_saved",
        "state_saved",
        "sample_saved",
        "model_saved",
        "run_finished",
        "error",
    }
)


class ProtocolError(ValueError):
    """A line that is not a valid progress record."""


def encode_record(record_type: str, **fields: Any) -> bytes:
    """Return one record as a JSON line (UTF-8, newline-terminated)."""
    if record_type not in RECORD_TYPES:
        raise ProtocolError(f"unknown record type {record_type!r}")
    record = {"type": record_type, "t": time.time(), **fields}
    return (json.dumps(record, separators=(",", ":")) + "\n").encode()


def decode_record(line: bytes | str) -> dict[str, Any]:
    """Parse one JSON line into a record dict, checking its type and timestamp."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {line!r:.200}") from exc
    if not isinstance(record, dict) or record.get("type") not in RECORD_TYPES:
        raise ProtocolError(f"not a progress record: {line!r:.200}")
    if not isinstance(record.get("t"), int | float):
        raise ProtocolError(f"record without a timestamp: {line!r:.200}")
    return record
