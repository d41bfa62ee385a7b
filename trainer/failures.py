"""Failure classes of a training run, decided from its exit status, output tails and protocol records.

The patterns come from sd-scripts' real output (recordings in ``tests/fixtures/sd_scripts``): argparse's
"unrecognized arguments" (exit 2), diffusers' "is neither a valid local path nor a valid repo id" for a
missing checkpoint, a ``TypeError`` inside ``_load_tokenizer`` when the offline tokenizer cache lacks the
tokenizer, a ``ZeroDivisionError`` in bucket selection when an image cannot be read, and "No data found"
with exit status 0 for an empty dataset. sd-scripts exits 0 in that last case, so a run only succeeds when
its final LoRA file exists.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FailureClass(StrEnum):
    """Why a run did not produce its LoRA."""

    BAD_DATASET = "bad_dataset"  # unreadable/corrupt images, empty dataset
    NO_OUTPUT = "no_output"  # exit 0 but no LoRA file, for no recognisable reason
    MISSING_MODEL = "missing_model"  # base model, text encoder, VAE or tokenizer not found
    BAD_ARGUMENTS = "bad_arguments"  # sd-scripts rejected its command line or config
    OUT_OF_MEMORY = "out_of_memory"  # CUDA/CPU allocation failed, or the kernel's OOM killer
    CRASHED = "crashed"  # anything else that ended with a non-zero status
    CANCELLED = "cancelled"  # we stopped it on request
    TIMED_OUT = "timed_out"  # we stopped it at the wall-clock limit


RETRYABLE: Mapping[FailureClass, bool] = {
    FailureClass.BAD_DATASET: False,
    FailureClass.NO_OUTPUT: False,
    FailureClass.MISSING_MODEL: False,
    FailureClass.BAD_ARGUMENTS: False,
    FailureClass.OUT_OF_MEMORY: True,  # memory pressure from other processes passes; the retry budget caps it
    FailureClass.CRASHED: True,
    FailureClass.CANCELLED: False,
    FailureClass.TIMED_OUT: False,
}


@dataclass(frozen=True)
class Failure:
    """A classified failure: class, whether a retry may help, a message for people, the evidence line."""

    failure_class: FailureClass
    message: str
    evidence: str = ""

    @property
    def retryable(self) -> bool:
        """Whether running the same job again may succeed."""
        return RETRYABLE[self.failure_class]

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of a ``job.failed`` event."""
        return {"class": self.failure_class.value, "message": self.message, "retryable": self.retryable}


@dataclass(frozen=True)
class RunEvidence:
    """What the supervisor knows when the process has ended."""

    returncode: int | None
    model_exists: bool
    cancelled: bool = False
    timed_out: bool = False
    sent_sigkill: bool = False
    stdout_tail: Sequence[str] = ()
    stderr_tail: Sequence[str] = ()
    error_record: Mapping[str, Any] | None = None
    records: Mapping[str, int] = field(default_factory=dict)  # record type -> count


_Rule = tuple[FailureClass, re.Pattern[str], str]

_RULES: tuple[_Rule, ...] = (
    (
        FailureClass.OUT_OF_MEMORY,
        re.compile(
            r"CUDA out of memory|OutOfMemoryError|DefaultCPUAllocator: can't allocate memory|"
            r"HIP out of memory|MPS backend out of memory|^MemoryError\b"
        ),
        "ran out of memory; try a smaller batch size or resolution",
    ),
    (
        FailureClass.BAD_ARGUMENTS,
        re.compile(r"error: unrecognized arguments:|: error: argument |: error: the following arguments are required"),
        "sd-scripts rejected its arguments",
    ),
    (
        FailureClass.MISSING_MODEL,
        re.compile(
            r"is neither a valid local path nor a valid repo id|in _load_tokenizer|"
            r"Cannot find the requested files in the local cache|LocalEntryNotFoundError|"
            r"(FileNotFoundError|No such file or directory).*\.(safetensors|ckpt|sft|pt|bin)\b"
        ),
        "a model file (base model, text encoder, VAE or tokenizer) could not be found",
    ),
    (
        FailureClass.BAD_DATASET,
        re.compile(r"ZeroDivisionError|No data found\. Please verify arguments|cannot identify image file"),
        "the dataset could not be read (empty, or an image is corrupt)",
    ),
)


def _lines(evidence: RunEvidence) -> list[str]:
    lines = [*evidence.stdout_tail, *evidence.stderr_tail]
    record = evidence.error_record
    if record:
        lines.append(f"{record.get('exc_type', '')}: {record.get('message', '')}")
    return lines


def _match(lines: Sequence[str], *, allowed: frozenset[FailureClass] | None = None) -> Failure | None:
    for failure_class, pattern, message in _RULES:
        if allowed is not None and failure_class not in allowed:
            continue
        for line in reversed(lines):
            if pattern.search(line):
                evidence = line.strip()[:500]
                return Failure(failure_class, f"{message}: {evidence}", evidence)
    return None


def classify(evidence: RunEvidence) -> Failure | None:
    """The failure of a finished run, or None when it succeeded (exit 0 and the LoRA file exists)."""
    if evidence.timed_out:
        return Failure(FailureClass.TIMED_OUT, "stopped at the wall-clock limit")
    if evidence.cancelled:
        return Failure(FailureClass.CANCELLED, "cancelled on request")
    code = evidence.returncode
    if code == 0 and evidence.model_exists:
        return None
    lines = _lines(evidence)
    if code == 0:
        found = _match(lines, allowed=frozenset({FailureClass.BAD_DATASET}))
        if found is not None:
            return found
        return Failure(FailureClass.NO_OUTPUT, "sd-scripts finished without writing the LoRA file")
    found = _match(lines)
    if found is not None:
        return found
    if code == -signal.SIGKILL and not evidence.sent_sigkill:
        return Failure(
            FailureClass.OUT_OF_MEMORY,
            "killed by SIGKILL that the supervisor did not send (most likely the kernel's OOM killer)",
        )
    if code == 2 and any(line.startswith("usage:") for line in lines):
        return Failure(FailureClass.BAD_ARGUMENTS, "sd-scripts rejected its arguments (exit status 2)")
    return Failure(FailureClass.CRASHED, f"sd-scripts ended with {_describe_status(code)}{_last_words(lines)}")


def _describe_status(code: int | None) -> str:
    if code is None:
        return "an unknown status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")
_PROGRESS_LINE = re.compile(r"\d+/\d+ \[|it/s\]|s/it\]")


def _last_words(lines: Sequence[str]) -> str:
    """The exception line nearest the end, else the last line that is not a progress bar."""
    texts = [line.strip() for line in lines if line.strip()]
    for text in reversed(texts):
        if _EXCEPTION_LINE.match(text):
            return f": {text[:300]}"
    for text in reversed(texts):
        if not _PROGRESS_LINE.search(text):
            return f": {text[:300]}"
    return ""
