"""The supervised sd-scripts process: start, progress events, wall-clock limit, cancel, outcome.

One :class:`TrainingProcess` runs the launcher (``trainer/launcher.py``, or the CI stand-in) as
``create_subprocess_exec(*argv)`` in a new session, so that the run is its own process group. Three pipes
come back: the protocol records (JSON lines on an inherited fd), stdout and stderr. Output goes to the run's
log file and to bounded tails; records become typed events (:mod:`trainer.supervisor_events`), delivered to
a callback and to :meth:`TrainingProcess.events`. The last event is always an :class:`Outcome`.

The child starts with default signal dispositions and an empty signal mask, whatever ours are
(:func:`trainer.supervisor_process.restore_default_signals`). Stopping (cancel or the wall-clock limit)
signals the whole group: SIGINT (sd-scripts stops with a
KeyboardInterrupt), then SIGTERM, then SIGKILL, each after a grace period. Whenever the leader has exited,
whatever is left of its group is killed and waited for. Our pipes are the child's stdout/stderr: if this
service dies, the training process gets EPIPE at its next write, so an orphan does not outlive it for
long; :func:`trainer.supervisor_process.terminate_orphan_group` cleans up after a restart.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from trainer.config import LaunchSpec, build_argv
from trainer.failures import FailureClass, RunEvidence, classify
from trainer.protocol import ProtocolError, decode_record
from trainer.supervisor_events import (
    CheckpointSaved,
    ModelSaved,
    Outcome,
    OutcomeStatus,
    OutputTail,
    Progress,
    ProgressTracker,
    SampleSaved,
    Started,
    StateSaved,
    SupervisorEvent,
)
from trainer.supervisor_process import kill_group_and_wait, restore_default_signals, signal_group

logger = logging.getLogger("atelier.trainer.supervisor")

EventCallback = Callable[[SupervisorEvent], Awaitable[None] | None]
PROCESS_FILE = "supervisor.json"
RECORD_LINE_LIMIT = 1 << 20


class LaunchError(RuntimeError):
    """The training process could not be started at all."""


@dataclass(frozen=True)
class SupervisorOptions:
    """Limits and grace periods of one run. ``env`` is the child's base environment (default: ours)."""

    wall_clock_limit_s: float | None = None
    sigint_grace_s: float = 30.0
    sigterm_grace_s: float = 15.0
    group_exit_timeout_s: float = 10.0
    drain_timeout_s: float = 5.0
    tail_lines: int = 200
    env: Mapping[str, str] | None = None


async def _pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=RECORD_LINE_LIMIT)
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, transport


class TrainingProcess:
    """One supervised training run. Use :meth:`start`, then :meth:`events` or :meth:`wait`."""

    def __init__(
        self, spec: LaunchSpec, options: SupervisorOptions | None = None, on_event: EventCallback | None = None
    ) -> None:
        self.spec = spec
        self.options = options or SupervisorOptions()
        self._on_event = on_event
        self._queue: asyncio.Queue[SupervisorEvent] = asyncio.Queue()
        self._proc: asyncio.subprocess.Process | None = None
        self._pgid = 0
        self._log: IO[bytes] | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._supervisor: asyncio.Task[Outcome] | None = None
        self._escalation: asyncio.Task[None] | None = None
        self._stdout = OutputTail(self.options.tail_lines)
        self._stderr = OutputTail(self.options.tail_lines)
        self._tracker = ProgressTracker()
        self._records: Counter[str] = Counter()
        self._error_record: dict[str, Any] | None = None
        self._signals_sent: list[str] = []
        self._cancel_requested = False
        self._timed_out = False
        self._started_monotonic = 0.0

    @property
    def pid(self) -> int:
        """The leader's pid (0 before start)."""
        return self._proc.pid if self._proc is not None else 0

    @property
    def pgid(self) -> int:
        """The run's process-group id (= the leader's pid; 0 before start)."""
        return self._pgid

    async def start(self) -> Started:
        """Spawn the process and begin supervising it; raises :class:`LaunchError` if it cannot start."""
        if self._proc is not None:
            raise RuntimeError("this training process was already started")
        layout = self.spec.layout
        layout.run_dir.mkdir(parents=True, exist_ok=True)
        (events_r, events_w), (out_r, out_w), (err_r, err_w) = os.pipe(), os.pipe(), os.pipe()
        argv = build_argv(self.spec, events_w)
        try:
            proc = self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=(events_w,),
                start_new_session=True,
                preexec_fn=restore_default_signals,
                env=self._child_env(),
                cwd=layout.run_dir,
            )
        except OSError as exc:
            for fd in (events_r, out_r, err_r):
                os.close(fd)
            raise LaunchError(f"could not start {argv[0]}: {exc}") from exc
        finally:
            for fd in (events_w, out_w, err_w):
                os.close(fd)
        self._started_monotonic = time.monotonic()
        self._pgid = proc.pid  # a new session's leader leads its own process group
        self._log = self._open_log(layout.log_file)
        started = Started(
            pid=proc.pid,
            pgid=self._pgid,
            argv=tuple(argv),
            cmdline_marker=self.spec.cmdline_marker,
            log_path=layout.log_file,
            started_at=time.time(),
        )
        self._write_process_file(started)
        await self._emit(started)
        self._readers = [
            asyncio.create_task(self._read_records(events_r)),
            asyncio.create_task(self._read_output(out_r, self._stdout)),
            asyncio.create_task(self._read_output(err_r, self._stderr)),
        ]
        self._supervisor = asyncio.create_task(self._supervise(proc))
        return started

    @staticmethod
    def _open_log(path: Path) -> IO[bytes]:
        return path.open("ab", buffering=0)  # closed when the run ends

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ if self.options.env is None else self.options.env)
        env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
        return env

    def _write_process_file(self, started: Started) -> None:
        info = {
            "pid": started.pid,
            "pgid": started.pgid,
            "cmdline_marker": started.cmdline_marker,
            "argv": list(started.argv),
            "started_at": started.started_at,
        }
        (self.spec.layout.run_dir / PROCESS_FILE).write_text(json.dumps(info, indent=2))

    async def events(self) -> AsyncIterator[SupervisorEvent]:
        """Every event from :class:`Started` to :class:`Outcome` (one consumer per run)."""
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, Outcome):
                return

    async def wait(self) -> Outcome:
        """Wait for the run to end and return its outcome."""
        if self._supervisor is None:
            raise RuntimeError("start() first")
        return await asyncio.shield(self._supervisor)

    async def cancel(self) -> None:
        """Ask the run to stop (SIGINT -> SIGTERM -> SIGKILL to its group); returns at once, see :meth:`wait`."""
        proc = self._proc
        if proc is None or proc.returncode is not None or self._cancel_requested:
            return
        self._cancel_requested = True
        self._start_escalation(proc)

    def _start_escalation(self, proc: asyncio.subprocess.Process) -> asyncio.Task[None]:
        if self._escalation is None:
            self._escalation = asyncio.create_task(self._escalate(proc))
        return self._escalation

    async def _escalate(self, proc: asyncio.subprocess.Process) -> None:
        steps = (
            (signal.SIGINT, self.options.sigint_grace_s),
            (signal.SIGTERM, self.options.sigterm_grace_s),
            (signal.SIGKILL, None),
        )
        for sig, grace in steps:
            if proc.returncode is not None or not signal_group(self._pgid, sig):
                return
            self._signals_sent.append(sig.name)
            logger.info("training pgid %d: sent %s", self._pgid, sig.name)
            if grace is None:
                return
            try:
                await asyncio.wait_for(proc.wait(), grace)
                return
            except TimeoutError:
                continue

    async def _supervise(self, proc: asyncio.subprocess.Process) -> Outcome:
        waiting = asyncio.ensure_future(proc.wait())
        done, _ = await asyncio.wait({waiting}, timeout=self.options.wall_clock_limit_s)
        if not done and not self._cancel_requested:
            self._timed_out = True
            logger.warning("training pgid %d: wall-clock limit reached", self._pgid)
        if not done:
            await self._start_escalation(proc)
        returncode = await waiting
        if self._escalation is not None:
            await self._escalation
        group_clean = await asyncio.to_thread(kill_group_and_wait, self._pgid, self.options.group_exit_timeout_s)
        if not group_clean:
            logger.error("training pgid %d: processes are left in the group", self._pgid)
        await self._drain()
        outcome = self._outcome(returncode, group_clean)
        if self._log is not None:
            self._log.close()
        await self._emit(outcome)
        return outcome

    async def _drain(self) -> None:
        _, pending = await asyncio.wait(self._readers, timeout=self.options.drain_timeout_s)
        for task in pending:  # a process outside the group still holds a pipe
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _outcome(self, returncode: int, group_clean: bool) -> Outcome:
        final = self.spec.layout.final_model
        model_exists = final.is_file() and final.stat().st_size > 0
        finished_anyway = returncode == 0 and model_exists
        evidence = RunEvidence(
            returncode=returncode,
            model_exists=model_exists,
            cancelled=self._cancel_requested and bool(self._signals_sent) and not finished_anyway,
            timed_out=self._timed_out and not finished_anyway,
            sent_sigkill="SIGKILL" in self._signals_sent,
            stdout_tail=self._stdout.lines(),
            stderr_tail=self._stderr.lines(),
            error_record=self._error_record,
            records=dict(self._records),
        )
        failure = classify(evidence)
        if failure is None:
            status = OutcomeStatus.SUCCEEDED
        elif failure.failure_class is FailureClass.CANCELLED:
            status = OutcomeStatus.CANCELLED
        else:
            status = OutcomeStatus.FAILED
        return Outcome(
            status=status,
            failure=failure,
            returncode=returncode,
            model_path=final if model_exists else None,
            last_step=self._tracker.step,
            total_steps=self._tracker.total,
            duration_s=time.monotonic() - self._started_monotonic,
            signals_sent=tuple(self._signals_sent),
            group_clean=group_clean,
            stdout_tail=tuple(evidence.stdout_tail),
            stderr_tail=tuple(evidence.stderr_tail),
            log_path=self.spec.layout.log_file,
        )

    async def _emit(self, event: SupervisorEvent) -> None:
        self._queue.put_nowait(event)
        if self._on_event is None:
            return
        try:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("training event callback failed on %s", type(event).__name__)

    async def _read_output(self, fd: int, tail: OutputTail) -> None:
        reader, transport = await _pipe_reader(fd)
        try:
            while chunk := await reader.read(1 << 16):
                tail.feed(chunk)
                if self._log is not None and not self._log.closed:
                    self._log.write(chunk)
        finally:
            transport.close()

    async def _read_records(self, fd: int) -> None:
        reader, transport = await _pipe_reader(fd)
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # a line over the limit; the reader has dropped it
                    logger.warning("training pgid %d: dropped an over-long record line", self._pgid)
                    continue
                if not line:
                    return
                try:
                    record = decode_record(line)
                except ProtocolError as exc:
                    logger.warning("training pgid %d: %s", self._pgid, exc)
                    continue
                event = self._event_for(record)
                if event is not None:
                    await self._emit(event)
        finally:
            transport.close()

    def _event_for(self, record: dict[str, Any]) -> SupervisorEvent | None:
        kind = record["type"]
        self._records[kind] += 1
        if kind == "run_started":
            return self._tracker.started(record)
        if kind == "step":
            return self._tracker.stepped(record)
        if kind == "error":
            self._error_record = record
            return None
        path, step = record.get("path"), record.get("step")
        if not isinstance(path, str):
            return None  # run_finished, or an artifact record without its path
        if kind == "model_saved":
            return ModelSaved(Path(path))
        if not isinstance(step, int):
            return None
        if kind == "checkpoint_saved":
            return CheckpointSaved(step, Path(path))
        if kind == "state_saved":
            return StateSaved(step, Path(path))
        if kind == "sample_saved":
            return SampleSaved(step, Path(path), str(record.get("prompt") or ""))
        return None


async def run_training(
    spec: LaunchSpec, options: SupervisorOptions | None = None, on_event: EventCallback | None = None
) -> Outcome:
    """Start a run, supervise it to the end and return its outcome (events go to ``on_event``)."""
    process = TrainingProcess(spec, options, on_event)
    await process.start()
    return await process.wait()


__all__ = [
    "EventCallback",
    "LaunchError",
    "Progress",
    "SupervisorOptions",
    "TrainingProcess",
    "run_training",
]
