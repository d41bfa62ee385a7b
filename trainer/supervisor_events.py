"""Typed events of a supervised training run, the progress/ETA tracker, and the output tail."""

from __future__ import annotations

import codecs
import re
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

from trainer.failures import Failure


@dataclass(frozen=True)
class Started:
    """The process is running: its pid and process-group id (record both to find orphans later)."""

    pid: int
    pgid: int
    argv: tuple[str, ...]
    cmdline_marker: str
    log_path: Path
    started_at: float


@dataclass(frozen=True)
class Progress:
    """Training progress; the rate and ETA come from the records' timestamps (smoothed)."""

    step: int
    total: int | None
    percent: float | None
    loss: float | None = None
    avg_loss: float | None = None
    lr: float | None = None
    epoch: int | None = None
    it_per_s: float | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class CheckpointSaved:
    """An intermediate LoRA file."""

    step: int
    path: Path


@dataclass(frozen=True)
class StateSaved:
    """A resumable ``--save_state`` folder."""

    step: int
    path: Path


@dataclass(frozen=True)
class SampleSaved:
    """A sample image rendered during training."""

    step: int
    path: Path
    prompt: str


@dataclass(frozen=True)
class ModelSaved:
    """The final LoRA file."""

    path: Path


class OutcomeStatus(StrEnum):
    """How the run ended (the job states of the API: a timeout is a failure)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Outcome:
    """The last event of every run."""

    status: OutcomeStatus
    failure: Failure | None
    returncode: int | None
    model_path: Path | None
    last_step: int
    total_steps: int | None
    duration_s: float
    signals_sent: tuple[str, ...]
    group_clean: bool
    stdout_tail: tuple[str, ...]
    stderr_tail: tuple[str, ...]
    log_path: Path


SupervisorEvent: TypeAlias = Started | Progress | CheckpointSaved | StateSaved | SampleSaved | ModelSaved | Outcome


class ProgressTracker:
    """Turns ``run_started``/``step`` records into :class:`Progress`, with a smoothed rate and ETA.

    The rate is an exponential moving average of seconds per step between consecutive step records
    (the first step, which includes warm-up, only sets the baseline).
    """

    def __init__(self, smoothing: float = 0.3) -> None:
        self._smoothing = smoothing
        self._seconds_per_step: float | None = None
        self._last: tuple[int, float] | None = None
        self.total: int | None = None
        self.step = 0

    def started(self, record: dict[str, Any]) -> Progress:
        """``run_started``: the total and the step a resumed run starts from."""
        self.total = _int_or_none(record.get("total_steps"))
        self.step = _int_or_none(record.get("resume_step")) or 0
        self._last = None
        return Progress(step=self.step, total=self.total, percent=self._percent())

    def stepped(self, record: dict[str, Any]) -> Progress:
        """``step``: update the rate from the time since the previous step record."""
        step = _int_or_none(record.get("step")) or self.step
        now = float(record["t"])
        self.total = _int_or_none(record.get("total_steps")) or self.total
        if self._last is not None and step > self._last[0] and now >= self._last[1]:
            sample = (now - self._last[1]) / (step - self._last[0])
            previous = self._seconds_per_step
            self._seconds_per_step = sample if previous is None else previous + self._smoothing * (sample - previous)
        self._last = (step, now)
        self.step = step
        rate = eta = None
        if self._seconds_per_step is not None:
            rate = 1.0 / self._seconds_per_step if self._seconds_per_step > 0 else None
            if self.total is not None:
                eta = max(0, self.total - step) * self._seconds_per_step
        return Progress(
            step=step,
            total=self.total,
            percent=self._percent(),
            loss=_float_or_none(record.get("loss")),
            avg_loss=_float_or_none(record.get("avg_loss")),
            lr=_float_or_none(record.get("lr")),
            epoch=_int_or_none(record.get("epoch")),
            it_per_s=rate,
            eta_s=eta,
        )

    def _percent(self) -> float | None:
        if not self.total:
            return None
        return round(100.0 * min(self.step, self.total) / self.total, 2)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class OutputTail:
    """The last ``limit`` lines of a byte stream, split on both CR and LF (tqdm redraws with CR).

    Terminal escape sequences (tqdm moves the cursor between nested bars) are removed.
    """

    def __init__(self, limit: int = 200) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._limit = limit
        self._lines: deque[str] = deque(maxlen=limit)
        self._partial = ""

    def feed(self, data: bytes) -> None:
        """Add a chunk."""
        text = self._partial + self._decoder.decode(data)
        pieces = _ANSI_ESCAPE.sub("", text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self._partial = pieces.pop()
        self._lines.extend(piece for piece in pieces if piece.strip())

    def lines(self) -> tuple[str, ...]:
        """The kept lines, oldest first, including an unterminated last line."""
        lines = (*self._lines, self._partial) if self._partial.strip() else tuple(self._lines)
        return lines[-self._limit :]
